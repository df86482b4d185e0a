/**
 * The library examples run against a real registry: examples/plain-http-mirror.ts pulled with
 * skopeo over plain HTTP, and examples/deny-audit-step.ts refusing one repository before the
 * store or the upstream sees it while logging every decision.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { type AuditLine, audit, denyRepositories } from '../../examples/deny-audit-step.ts';
import { createMirror, type MirrorOptions } from '../../examples/plain-http-mirror.ts';
import { createHarness, type Harness, type Registry } from '../harness/index.ts';

async function startMirror(h: Harness, registry: Registry, extra: Partial<MirrorOptions> = {}) {
  const mirror = await createMirror({
    upstream: registry.namedHostPort,
    upstreamAddress: '127.0.0.1',
    caCertificates: [registry.caCertPem],
    cacheDir: h.tempDir('mirror-cache'),
    ...extra,
  });
  await new Promise<void>((resolve) => mirror.server.listen(0, '127.0.0.1', resolve));
  h.defer(() => mirror.close());
  return { mirror, port: (mirror.server.address() as AddressInfo).port };
}

/** skopeo over plain HTTP (insecure source); returns the pulled manifest's digest. */
async function skopeoPull(h: Harness, port: number, repoRef: string): Promise<string> {
  const into = h.tempDir('pulled');
  const source = `docker://127.0.0.1:${port}/${repoRef}`;
  await h.run('skopeo', [
    'copy',
    '--quiet',
    '--src-tls-verify=false',
    '--src-no-creds',
    source,
    `dir:${into}`,
  ]);
  const manifest = await readFile(join(into, 'manifest.json'));
  return `sha256:${createHash('sha256').update(manifest).digest('hex')}`;
}

test('plain-http-mirror: skopeo pulls through it; the second pull never reaches the registry', async (t) => {
  const h = createHarness(t);
  const registry = await h.startRegistry();
  const image = await h.createImage({ layers: [300_000, 1_200_000] });
  await registry.push(image, 'library/app:v1');
  const { mirror, port } = await startMirror(h, registry, {});
  const first = await skopeoPull(h, port, 'library/app:v1');
  assert.equal(first, image.manifestDigest);
  await registry.counter.settle();
  registry.counter.reset();
  const second = await skopeoPull(h, port, 'library/app:v1');
  assert.equal(second, image.manifestDigest);
  await registry.counter.settle();
  assert.equal(registry.counter.count({ kind: 'blob' }), 0, 'blobs come from the store');
  assert.ok(mirror.cache.stats().hits >= 3, 'layers and config served as hits');
  const other = await fetch(`http://127.0.0.1:${port}/not-registry`);
  assert.equal(other.status, 404);
});

test('deny-audit-step: a denied repository gets 403 DENIED, upstream never asked; every decision logged', async (t) => {
  const h = createHarness(t);
  const registry = await h.startRegistry();
  const image = await h.createImage({ layers: [200_000] });
  await registry.push(image, 'library/app:v1');
  await registry.push(image, 'team/secret:v1');
  const lines: AuditLine[] = [];
  const use = [audit((line) => lines.push(line)), denyRepositories(['team/secret'])];
  const { port } = await startMirror(h, registry, { use });
  await registry.counter.settle();
  registry.counter.reset();

  assert.equal(await skopeoPull(h, port, 'library/app:v1'), image.manifestDigest);
  const denied = await fetch(`http://127.0.0.1:${port}/v2/team/secret/manifests/v1`);
  assert.equal(denied.status, 403);
  const body = (await denied.json()) as { errors: { code: string; message: string }[] };
  assert.equal(body.errors[0]?.code, 'DENIED');
  const blob = await fetch(`http://127.0.0.1:${port}/v2/team/secret/blobs/${image.layers[0]?.digest}`);
  assert.equal(blob.status, 403);
  await blob.arrayBuffer();

  await registry.counter.settle();
  assert.equal(
    registry.counter.count({ repo: 'team/secret' }),
    0,
    'the denied repository never reached upstream',
  );
  assert.ok(registry.counter.count({ repo: 'library/app' }) > 0);
  const deniedLines = lines.filter((l) => l.decision === 'denied');
  assert.deepEqual(
    deniedLines.map((l) => [l.method, l.kind, l.name, l.status]),
    [
      ['GET', 'manifest', 'team/secret', 403],
      ['GET', 'blob', 'team/secret', 403],
    ],
  );
  const served = lines.filter((l) => l.decision === 'served');
  assert.ok(served.some((l) => l.kind === 'manifest' && l.name === 'library/app' && l.status === 200));
  assert.ok(served.every((l) => l.name !== 'team/secret'));
});
