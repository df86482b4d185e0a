// The security review's findings about what upstreams can do to drp, replayed end to end
// through drp-server (every peer on loopback):
//  5. an upstream that accepts connections but never answers: a cached pull falls back to stale
//     within UPSTREAM_STALE_TIMEOUT, not after the 60 s response timeout per request;
//  6. a full cache disk does not stop the start, and leaves no temp files;
//  7. a fill for one registry never holds a client of another;
//  9. no signed query string, password or token in any output, debug included.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { readdir, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import { describe, startDrp } from '../e2e/lib/daemon.ts';
import { createHarness, type Layer } from '../harness/index.ts';
import { rawRequest } from './raw-client.ts';

test('an upstream that never answers: a cached pull is served stale after UPSTREAM_STALE_TIMEOUT', async (t) => {
  const h = createHarness(t);
  const ca = await h.testCA();
  const registry = await h.startRegistry({ names: ['registry.test'] });
  const image = await h.createImage({ layers: [200_000] });
  await registry.push(image, 'team/app:v1');
  const front = await h.startFront({ upstream: registry, names: ['registry.test'] });
  const named = `registry.test:${front.port}`;
  const drp = await startDrp(h, {
    env: {
      REGISTRIES: named,
      UPSTREAM_MAPPINGS: 'registry.test=127.0.0.1',
      UPSTREAM_CA_FILE: ca.certPath,
      CACHE_DIR: h.tempDir('cache'),
      CA_DIR: h.tempDir('ca'),
      ENABLE_MANIFEST_CACHE: 'true',
      MANIFEST_CACHE_DEFAULT_TIME: '1s',
      UPSTREAM_STALE_TIMEOUT: '1s',
      PROXY_SEND_TIMEOUT: '60s',
    },
  });
  await h.pullImage(named, 'team/app:v1', { proxy: drp.url, certDir: drp.certDir });
  await new Promise((r) => setTimeout(r, 1200));
  // Accepts every request and never answers it.
  front.setInterceptor(() => new Promise(() => undefined));
  const since = drp.mark();
  // Well under one 60 s response timeout: only the stale fallback lets this pull finish.
  const pulled = await h.pullImage(named, 'team/app:v1', {
    proxy: drp.url,
    certDir: drp.certDir,
    timeoutMs: 30_000,
  });
  assert.equal(pulled.manifestDigest, image.manifestDigest);
  const tag = drp.requests({ uri: '/v2/team/app/manifests/v1' }, since);
  assert.ok(
    tag.length > 0 && tag.every((l) => l.upstream_cache_status === 'STALE'),
    describe(drp.lines.slice(since)),
  );
});

test('a fill of a digest for one registry never holds a client of another registry', async (t) => {
  const h = createHarness(t);
  const ca = await h.testCA();
  const registry = await h.startRegistry({ names: ['registry.test'] });
  const image = await h.createImage({ layers: [3_000_000] });
  await registry.push(image, 'team/app:v1');
  const layer = image.layers[0] as Layer;
  // Another registry that starts the same blob and then stalls forever.
  let stalled = false;
  const slow = await h.startHttpsServer(
    (req: IncomingMessage, res: ServerResponse) => {
      if (!req.url?.includes('/blobs/')) {
        res
          .writeHead(200, { 'docker-distribution-api-version': 'registry/2.0', 'content-length': 2 })
          .end('{}');
        return;
      }
      res.writeHead(200, { 'content-length': layer.size, 'content-type': 'application/octet-stream' });
      createReadStream(layer.path, { start: 0, end: 99_999 }).pipe(res, { end: false });
      stalled = true;
    },
    ['slow.test'],
  );
  const drp = await startDrp(h, {
    env: {
      REGISTRIES: `${registry.namedHostPort} slow.test:${slow.port}`,
      UPSTREAM_MAPPINGS: 'registry.test=127.0.0.1 slow.test=127.0.0.1',
      UPSTREAM_CA_FILE: ca.certPath,
      CACHE_DIR: h.tempDir('cache'),
      CA_DIR: h.tempDir('ca'),
    },
  });
  const slowClient = rawRequest(
    drp.port,
    `slow.test:${slow.port}`,
    drp.caPem,
    'GET',
    `/v2/x/y/blobs/${layer.digest}`,
  ).catch(() => undefined);
  while (!stalled) await new Promise((r) => setTimeout(r, 20));
  const pulled = await h.pullImage(registry.namedHostPort, 'team/app:v1', {
    proxy: drp.url,
    certDir: drp.certDir,
    timeoutMs: 30_000,
  });
  assert.equal(pulled.manifestDigest, image.manifestDigest);
  await drp.stop();
  await slowClient;
});

test('a full cache disk: the daemon starts, serves pulls uncached and leaves no temp files', async (t) => {
  const h = createHarness(t);
  const ca = await h.testCA();
  const registry = await h.startRegistry({ names: ['registry.test'] });
  const [first, second] = await Promise.all([
    h.createImage({ layers: [300_000] }),
    h.createImage({ layers: [2_000_000] }),
  ]);
  await registry.push(first, 'full/one:v1');
  await registry.push(second, 'full/two:v1');
  const cacheDir = h.tempDir('tmpfs-cache');
  await h.run('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', cacheDir]);
  const unmountOnExit = () => spawnSync('umount', ['-l', cacheDir]);
  process.once('exit', unmountOnExit);
  const daemons: { stop(): Promise<unknown> }[] = [];
  h.defer(async () => {
    for (const d of daemons) await d.stop();
    await h.run('umount', ['-l', cacheDir], { check: false });
    process.off('exit', unmountOnExit);
  });
  const env = {
    REGISTRIES: registry.namedHostPort,
    UPSTREAM_MAPPINGS: 'registry.test=127.0.0.1',
    UPSTREAM_CA_FILE: ca.certPath,
    CACHE_DIR: cacheDir,
    CA_DIR: h.tempDir('ca'),
  };
  const before = await startDrp(h, { env });
  daemons.push(before);
  await h.pullImage(registry.namedHostPort, 'full/one:v1', { proxy: before.url, certDir: before.certDir });
  await before.stop();
  // Fill the volume to the last byte.
  for (let size = 4 * 2 ** 20; size >= 1; size = Math.floor(size / 2)) {
    try {
      await writeFile(join(cacheDir, `filler-${size}`), Buffer.alloc(size), { flag: 'wx' });
    } catch {
      // ENOSPC: try a smaller piece
    }
  }
  const after = await startDrp(h, { env });
  daemons.push(after);
  const pulled = await h.pullImage(registry.namedHostPort, 'full/two:v1', {
    proxy: after.url,
    certDir: after.certDir,
  });
  assert.equal(pulled.manifestDigest, second.manifestDigest);
  const warm = await h.pullImage(registry.namedHostPort, 'full/one:v1', {
    proxy: after.url,
    certDir: after.certDir,
  });
  assert.equal(warm.manifestDigest, first.manifestDigest);
  const leftovers: string[] = [];
  const walk = async (dir: string) => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) await walk(join(dir, entry.name));
      else if (/\.tmp$|\.part$/.test(entry.name)) leftovers.push(join(dir, entry.name));
    }
  };
  await after.stop();
  await walk(cacheDir);
  assert.deepEqual(leftovers, []);
});

test('no signed query string, password or token in any output, debug included', async (t) => {
  const h = createHarness(t);
  const ca = await h.testCA();
  const creds = { username: 'robot', password: 'PW-SECRET-4242' };
  const registry = await h.startRegistry({ names: ['registry.test'], auth: creds });
  const image = await h.createImage({ layers: [500_000] });
  await registry.push(image, 'private/app:v1');
  const layer = image.layers[0] as Layer;
  const cdn = await h.startHttpsServer(
    (req: IncomingMessage, res: ServerResponse) => {
      if (!req.url?.includes('Signature=SIG-SECRET-777')) {
        res.writeHead(403).end();
        return;
      }
      res.writeHead(200, { 'content-length': layer.size });
      createReadStream(layer.path).pipe(res);
    },
    ['cdn.test'],
  );
  const front = await h.startFront({
    upstream: registry,
    names: ['registry.test'],
    onRequest: async (req, res, forward) => {
      if (req.method !== 'GET' || !req.url?.includes(`/blobs/${layer.digest}`)) return forward();
      res.writeHead(307, {
        location: `https://cdn.test:${cdn.port}/b/${layer.digest}?Signature=SIG-SECRET-777&X=1`,
      });
      res.end();
    },
  });
  const named = `registry.test:${front.port}`;
  const output: string[] = [];
  const drp = await startDrp(h, {
    env: {
      // The CDN is intercepted too, as a client may follow a relayed redirect through drp.
      REGISTRIES: `${named} cdn.test:${cdn.port}`,
      UPSTREAM_MAPPINGS: 'registry.test=127.0.0.1 cdn.test=127.0.0.1',
      UPSTREAM_CA_FILE: ca.certPath,
      CACHE_DIR: h.tempDir('cache'),
      CA_DIR: h.tempDir('ca'),
      AUTH_REGISTRY_DELIMITER: '|',
      AUTH_REGISTRIES: `${named}|${creds.username}|${creds.password}`,
      DEBUG: 'drp:*',
    },
    onLine: (line) => output.push(line),
  });
  const pulled = await h.pullImage(named, 'private/app:v1', {
    proxy: drp.url,
    certDir: drp.certDir,
    creds: null,
  });
  assert.equal(pulled.manifestDigest, image.manifestDigest);
  const direct = await rawRequest(
    drp.port,
    `cdn.test:${cdn.port}`,
    drp.caPem,
    'GET',
    `/b/${layer.digest}?Signature=SIG-SECRET-777&X=2`,
  );
  assert.equal(direct.status, 200);
  await drp.stop();
  const text = output.join('\n');
  assert.ok(output.length > 20, 'debug output was produced');
  const basic = Buffer.from(`${creds.username}:${creds.password}`).toString('base64');
  for (const secret of ['SIG-SECRET-777', 'PW-SECRET-4242', basic]) {
    assert.ok(!text.includes(secret), `${secret} appears in the output`);
  }
});
