// drp in a test suite, in one line: an in-process caching proxy on an ephemeral port with a
// fresh CA and a temporary cache, removed again by close().
//
//   node --import tsx --test examples/start-proxy.test.ts      (after `pnpm build`)
//
// Every client the suite starts gets proxy.env() (HTTPS_PROXY and friends) and trusts
// proxy.caCertPem; every registry pull then goes through drp, and the second run of the
// suite pulls from its cache (give `cacheDir` a fixed path to keep it between runs).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { type RunningProxy, startProxy } from '@drp/server';

let proxy: RunningProxy;
let certDir: string;

before(async () => {
  proxy = await startProxy({
    // Docker Hub is always intercepted; list the others your suite pulls from.
    registries: ['ghcr.io', 'quay.io'],
    // Optional: keep the cache between runs, print one JSON line per request to stderr.
    // cacheDir: '.cache/drp',
    // log: 'json',
  });
  // skopeo, podman and containerd read a CA from a directory holding ca.crt.
  certDir = await mkdtemp(join(tmpdir(), 'drp-example-ca-'));
  await writeFile(join(certDir, 'ca.crt'), proxy.caCertPem);
});

after(() => proxy.close());

test('inspect an image through the proxy (needs network access and skopeo)', {
  skip: !process.env.DRP_EXAMPLE_NETWORK,
}, async () => {
  const { stdout } = await promisify(execFile)(
    'skopeo',
    ['inspect', '--cert-dir', certDir, 'docker://ghcr.io/linuxcontainers/alpine:latest'],
    { env: { ...process.env, ...proxy.env() } },
  );
  assert.match(stdout, /"Digest"/);
});

test('the proxy answers its own endpoints', async () => {
  const response = await fetch(`${proxy.url}/ca.crt`);
  assert.equal(await response.text(), proxy.caCertPem);
});
