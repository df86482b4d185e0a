/**
 * Example (b), examples/custom-store.ts: the cache on a ContentStore of one's own. The store
 * passes the exported conformance suite, and the mirror pulls blobs and manifests from a real
 * registry into it, serving the second request from it.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { setTimeout } from 'node:timers/promises';
import { CACHE_STATUS_HEADER } from '@drp/core';
import { contentStoreConformance } from '@drp/core/testing';
import { startLruMirror } from '../../examples/custom-store.ts';
import { LruStore } from '../../examples/lru-store.ts';
import { createHarness, type Layer } from '../harness/index.ts';
import { get } from './lib.ts';

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

contentStoreConformance('examples/lru-store.ts', async () => new LruStore(64 * 2 ** 20));

describe('example: custom store', () => {
  test('a pull through the mirror lands in the LruStore and is served from it', async (t) => {
    const h = createHarness(t);
    const registry = await h.startRegistry();
    const image = await h.createImage({ layers: [1_500_000] });
    await registry.push(image, 'library/app:v1');
    const mirror = await startLruMirror(
      { host: 'registry.test', port: registry.port },
      {
        cacheDir: h.tempDir('lru-mirror'),
        upstream: { mappings: { 'registry.test': '127.0.0.1' }, caCertificates: [registry.caCertPem] },
      },
    );
    h.defer(mirror.close);
    await registry.counter.settle();
    registry.counter.reset();

    const layer = image.layers[0] as Layer;
    const path = `/v2/library/app/blobs/${layer.digest}`;
    const first = await get(mirror.port, path);
    assert.equal(first.status, 200);
    assert.equal(sha256(first.body), layer.digest);
    const manifestPath = `/v2/library/app/manifests/${image.manifestDigest}`;
    const manifest = await get(mirror.port, manifestPath, { accept: image.mediaType });
    assert.equal(manifest.status, 200);
    assert.equal(sha256(manifest.body), image.manifestDigest);

    // Commits finish just after the last byte went out.
    for (let i = 0; i < 100 && mirror.cache.stats().entries < 2; i += 1) await setTimeout(20);
    assert.equal(mirror.store.peek(layer.digest)?.size, layer.size, 'the layer is in the custom store');
    assert.ok(mirror.store.peek(image.manifestDigest), 'and the manifest by digest');
    assert.equal(mirror.cache.stats().entries, 2);

    const again = await get(mirror.port, path);
    assert.equal(again.headers[CACHE_STATUS_HEADER], 'HIT');
    assert.ok(again.body.equals(first.body));
    await registry.counter.settle();
    assert.equal(registry.counter.count({ kind: 'blob', method: 'GET' }), 1, registry.counter.summary());
  });
});
