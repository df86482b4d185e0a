// The harness against a real registry: push/pull round trips, auth, request counting.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { createHarness, pushImage, RunError } from './index.ts';

test('push a 3-layer image and pull it back: manifest and layer digests match', async (t) => {
  const h = createHarness(t);
  const registry = await h.startRegistry();
  const image = await h.createImage({ layers: [1024, 300_000, 2_000_000] });
  assert.equal(image.layers.length, 3);

  await registry.push(image, 'test/three:v1');
  const pulled = await h.pullImage(registry, 'test/three:v1');
  assert.equal(pulled.manifestDigest, image.manifestDigest);
  assert.deepEqual(pulled.manifest, image.manifest);
  assert.deepEqual(
    pulled.layers,
    image.layers.map((l) => l.digest),
  );
  assert.equal(pulled.configDigest, image.config.digest);

  // The oci: destination reads back the same digests.
  const oci = await h.pullImage(registry, 'test/three:v1', { format: 'oci' });
  assert.equal(oci.manifestDigest, image.manifestDigest);
  assert.deepEqual(oci.layers, pulled.layers);
});

test('htpasswd auth: push works with credentials and fails without', async (t) => {
  const h = createHarness(t);
  const auth = { username: 'alice', password: 's3cret' };
  const registry = await h.startRegistry({ auth });
  const image = await h.createImage({ layers: [4096] });

  await assert.rejects(pushImage(image, registry, 'private/app:v1'), (e: unknown) => {
    assert.ok(e instanceof RunError);
    assert.match(e.message, /unauthorized|authentication required/i);
    return true;
  });
  await pushImage(image, registry, 'private/app:v1', { creds: auth });
  await assert.rejects(h.pullImage(registry, 'private/app:v1'));
  const pulled = await h.pullImage(registry, 'private/app:v1', { creds: 'alice:s3cret' });
  assert.equal(pulled.manifestDigest, image.manifestDigest);

  const ping = await registry.request('/v2/');
  assert.equal(ping.status, 401);
  assert.match(String(ping.headers['www-authenticate']), /^Basic/);
});

test('the counter sees every blob GET of a pull, and reset() clears it', async (t) => {
  const h = createHarness(t);
  const registry = await h.startRegistry();
  const image = await h.createImage({ layers: [10_000, 20_000] });
  await registry.push(image, 'count/me:latest');
  await registry.counter.settle();
  assert.ok(registry.counter.count({ kind: 'upload' }) > 0, 'the push was counted');
  registry.counter.reset();
  assert.equal(registry.counter.count(), 0);

  await h.pullImage(registry, 'count/me:latest');
  await registry.counter.settle();
  const c = registry.counter;
  const blobGets = c.requests({ method: 'GET', kind: 'blob', status: 200 });
  // Two layers and the config, each fetched exactly once.
  assert.deepEqual(
    blobGets.map((r) => r.reference).sort(),
    [image.config.digest, ...image.layers.map((l) => l.digest)].sort(),
    c.summary(),
  );
  const layerBytes = image.layers.reduce((s, l) => s + l.size, 0) + image.config.size;
  assert.equal(c.bytes({ method: 'GET', kind: 'blob' }), layerBytes);
  assert.ok(c.count({ kind: 'manifest' }) >= 1);
  assert.equal(c.requests({ kind: 'blob' })[0]?.repo, 'count/me');

  c.reset();
  const res = await registry.request(`/v2/count/me/blobs/${image.layers[0]?.digest}`, { method: 'HEAD' });
  assert.equal(res.status, 200);
  await c.waitFor({ method: 'HEAD', kind: 'blob' });
  await c.settle();
  assert.equal(c.count(), 1);
  assert.equal(c.count({ kind: 'blob', method: 'GET' }), 0);
});

test('a multi-platform index round-trips', async (t) => {
  const h = createHarness(t);
  const registry = await h.startRegistry();
  const index = await h.createIndex(
    [
      { os: 'linux', architecture: 'amd64' },
      { os: 'linux', architecture: 'arm64', variant: 'v8' },
    ],
    [5000, 7000],
    { tag: 'multi' },
  );
  assert.equal(index.children.length, 2);
  await registry.push(index, 'multi/arch:v1');

  const all = await h.pullImage(registry, 'multi/arch:v1', { all: true });
  assert.equal(all.manifestDigest, index.digest);
  assert.deepEqual(
    all.children.map((c) => c.manifestDigest),
    index.children.map((c) => c.manifestDigest),
  );
  assert.deepEqual(
    all.children.map((c) => c.layers),
    index.children.map((c) => c.layers.map((l) => l.digest)),
  );

  // Without --all skopeo resolves the index to this host's platform (linux/amd64).
  const one = await h.pullImage(registry, 'multi/arch:v1');
  assert.equal(one.manifestDigest, index.children[0]?.manifestDigest);
});

test('close() stops the registry and the harness removes its directories', async () => {
  const h = createHarness();
  const registry = await h.startRegistry();
  const pid = registry.daemon.pid;
  const image = await h.createImage({ layers: [100] });
  await registry.push(image, 'a/b:c');
  assert.ok(existsSync(h.dir));
  await registry.close();
  assert.equal(registry.daemon.running(), false);
  assert.throws(() => process.kill(pid, 0), /ESRCH/);
  await h.close();
  assert.equal(existsSync(h.dir), false);
  await h.close(); // idempotent
});
