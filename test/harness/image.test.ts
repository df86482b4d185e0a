// The OCI image generator: layout validity, real tar.gz layers, shared layers, Docker formats.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { blobPath, createHarness, createImage, MediaTypes } from './index.ts';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

test('createImage writes a valid OCI layout with tar.gz layers of the requested sizes', async (t) => {
  const h = createHarness(t);
  const dir = h.tempDir('layout');
  const image = await createImage(dir, { layers: [0, 511, 4096, 100_000], tag: 'v1' });

  assert.deepEqual(JSON.parse(readFileSync(join(dir, 'oci-layout'), 'utf8')), {
    imageLayoutVersion: '1.0.0',
  });
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as {
    manifests: { digest: string; annotations: Record<string, string> }[];
  };
  assert.equal(index.manifests.length, 1);
  assert.equal(index.manifests[0]?.digest, image.manifestDigest);
  assert.equal(index.manifests[0]?.annotations['org.opencontainers.image.ref.name'], 'v1');
  assert.equal(image.source, `oci:${dir}:v1`);

  assert.equal(sha(readFileSync(blobPath(dir, image.manifestDigest))), image.manifestDigest);
  assert.equal(sha(image.manifest), image.manifestDigest);
  assert.equal(image.mediaType, MediaTypes.ociManifest);
  const config = JSON.parse(image.config.data.toString()) as { rootfs: { diff_ids: string[] }; os: string };
  assert.equal(config.os, 'linux');
  assert.deepEqual(
    config.rootfs.diff_ids,
    image.layers.map((l) => l.diffId),
  );

  for (const [i, layer] of image.layers.entries()) {
    const blob = readFileSync(layer.path);
    assert.equal(sha(blob), layer.digest);
    assert.equal(blob.length, layer.size);
    const tar = gunzipSync(blob);
    assert.equal(sha(tar), layer.diffId);
    assert.equal(tar.length % 512, 0);
    assert.equal(layer.payloadSize, [0, 511, 4096, 100_000][i]);
    // GNU tar agrees it is one regular file of that size.
    const listing = await h.run('tar', ['-tvzf', layer.path]);
    assert.match(
      listing.stdout,
      new RegExp(`^-rw-r--r-- root/root\\s+${layer.payloadSize} .* random-[0-9a-f]+\\.bin\\n$`),
    );
  }
  // Random payloads: no two layers alike, and gzip did not shrink them.
  assert.equal(new Set(image.layers.map((l) => l.digest)).size, 4);
  assert.ok((image.layers[3]?.size ?? 0) > 100_000);
});

test('several tags in one layout, shared layers, and a fast large layer', async (t) => {
  const h = createHarness(t);
  const dir = h.tempDir('layout');
  const a = await createImage(dir, { layers: [2000, 3000], tag: 'a' });
  const b = await createImage(dir, { layers: [a.layers[0]!, 1000], tag: 'b' });
  assert.equal(b.layers[0]?.digest, a.layers[0]?.digest);
  assert.notEqual(b.manifestDigest, a.manifestDigest);
  const other = await h.createImage({ layers: [a.layers[1]!] });
  assert.equal(statSync(other.layers[0]!.path).size, a.layers[1]?.size);

  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as { manifests: unknown[] };
  assert.equal(index.manifests.length, 2);
  const again = await createImage(dir, { layers: [10], tag: 'a' });
  const after = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as {
    manifests: { digest: string }[];
  };
  assert.equal(after.manifests.length, 2, 're-tagging replaces the entry');
  assert.ok(after.manifests.some((m) => m.digest === again.manifestDigest));

  const big = await h.createImage({ layers: [64 * 1024 * 1024] });
  assert.ok((big.layers[0]?.size ?? 0) > 64 * 1024 * 1024);
});

test('Docker-format images and manifest lists push and pull with their digests', async (t) => {
  const h = createHarness(t);
  const registry = await h.startRegistry();
  const image = await h.createImage({ layers: [1500, 2500], format: 'docker', tag: 'd1' });
  assert.equal(image.mediaType, MediaTypes.dockerManifest);
  assert.match(image.source, /^dir:/);
  await registry.push(image, 'docker/single:v1');
  const pulled = await h.pullImage(registry, 'docker/single:v1');
  assert.equal(pulled.mediaType, MediaTypes.dockerManifest);
  assert.equal(pulled.manifestDigest, image.manifestDigest);

  const list = await h.createIndex(
    [
      { os: 'linux', architecture: 'amd64' },
      { os: 'linux', architecture: 'arm', variant: 'v7' },
    ],
    [1000],
    { format: 'docker', tag: 'multi' },
  );
  assert.equal(list.mediaType, MediaTypes.dockerManifestList);
  await registry.push(list, 'docker/list:v1');
  const all = await h.pullImage(registry, 'docker/list:v1', { all: true });
  assert.equal(all.manifestDigest, list.digest);
  assert.equal(all.mediaType, MediaTypes.dockerManifestList);
  assert.deepEqual(
    all.children.map((c) => c.manifestDigest),
    list.children.map((c) => c.manifestDigest),
  );
  // The registry serves the list as stored when asked for it.
  const res = await registry.request('/v2/docker/list/manifests/v1', { headers: { accept: list.mediaType } });
  assert.equal(res.headers['docker-content-digest'], list.digest);
  assert.deepEqual(res.body, list.manifest);
});
