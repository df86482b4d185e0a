/**
 * Example (d), examples/blob-engine.ts: the blob engine alone in a plain http server, fetching
 * from a real registry. Concurrent clients of one missing blob share one upstream GET and get
 * verified bytes; the next request is served from the store; an unknown digest is relayed.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { startBlobServer } from '../../examples/blob-engine.ts';
import { createHarness, type Layer } from '../harness/index.ts';
import { get } from './lib.ts';

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

describe('example: blob engine alone', () => {
  test('8 concurrent clients, one upstream GET, verified bytes; then from the store', async (t) => {
    const h = createHarness(t);
    const registry = await h.startRegistry();
    const image = await h.createImage({ layers: [6_000_000] });
    await registry.push(image, 'library/app:v1');
    const origin = `https://127.0.0.1:${registry.port}/v2/library/app/blobs/`;
    const server = await startBlobServer(origin, h.tempDir('engine-store'), registry.caCertPem);
    h.defer(server.close);
    await registry.counter.settle();
    registry.counter.reset();

    const layer = image.layers[0] as Layer;
    const all = await Promise.all(
      Array.from({ length: 8 }, () => get(server.port, `/blobs/${layer.digest}`)),
    );
    for (const r of all) {
      assert.equal(r.status, 200);
      assert.equal(r.body.length, layer.size);
      assert.equal(sha256(r.body), layer.digest);
    }
    await registry.counter.settle();
    assert.equal(registry.counter.count({ kind: 'blob', method: 'GET' }), 1, registry.counter.summary());
    assert.equal(server.engine.stats().fills, 1);

    for (let i = 0; i < 100 && !server.engine.store.peek(layer.digest); i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(server.engine.store.peek(layer.digest)?.size, layer.size, 'committed to the store');
    const hit = await get(server.port, `/blobs/${layer.digest}`);
    assert.equal(sha256(hit.body), layer.digest);
    await registry.counter.settle();
    assert.equal(registry.counter.count({ kind: 'blob', method: 'GET' }), 1, 'the hit asked nobody');

    const unknown = sha256(randomBytes(100));
    assert.equal((await get(server.port, `/blobs/${unknown}`)).status, 404, 'upstream 404 relayed');
    assert.equal(server.engine.store.peek(unknown), undefined);
  });
});
