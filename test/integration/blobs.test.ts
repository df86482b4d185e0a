/**
 * The blob engine against a real registry (distribution 2.8 from the harness), through the
 * cache mounted in an HTTPS server: warm pulls make no upstream blob requests, a shared layer is
 * stored once, concurrent misses share one fetch, faults leave nothing cached, the cap evicts
 * least recently used blobs, and CDN redirects are followed without leaking credentials.
 */
import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { describe, test } from 'node:test';
import { createHarness, type Layer } from '../harness/index.ts';
import { fetchHashed, startDrpFront } from './blobs-lib.ts';

const REGISTRY = 'registry.test';
const CDN = 'cdn.test';

/** Polls until `check` holds (commits finish just after the client's response). */
async function until(check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function blobUrl(repo: string, digest: string): string {
  return `/v2/${repo}/blobs/${digest}`;
}

describe('blob engine against a real registry', () => {
  test('a warm pull of a multi-layer image makes zero upstream blob requests', async (t) => {
    const h = createHarness(t);
    const registry = await h.startRegistry();
    const image = await h.createImage({ layers: [2_000_000, 3_000_000, 1_000_000] });
    await registry.push(image, 'library/app:v1');
    const drp = await startDrpFront(h, { host: REGISTRY, port: registry.port });
    await registry.counter.settle();
    registry.counter.reset();

    const cold = await h.pullImage({ hostPort: drp.hostPort, certDir: drp.certDir }, 'library/app:v1');
    assert.equal(cold.manifestDigest, image.manifestDigest);
    await registry.counter.settle();
    assert.equal(registry.counter.count({ kind: 'blob', method: 'GET' }), 4, registry.counter.summary());
    registry.counter.reset();
    await until(() => drp.cache.stats().activeFills === 0);

    const warm = await h.pullImage({ hostPort: drp.hostPort, certDir: drp.certDir }, 'library/app:v1');
    assert.equal(warm.manifestDigest, image.manifestDigest);
    await registry.counter.settle();
    assert.equal(
      registry.counter.count({ kind: 'blob' }),
      0,
      `warm pull asked upstream for blobs:\n${registry.counter.summary()}`,
    );
    assert.ok(drp.cache.stats().hits >= 4);
  });

  test('one layer pushed to two repositories is fetched and stored once', async (t) => {
    const h = createHarness(t);
    const registry = await h.startRegistry();
    const first = await h.createImage({ layers: [3_000_000] });
    const shared = first.layers[0] as Layer;
    const second = await h.createImage({ layers: [shared, 500_000] });
    await registry.push(first, 'team-a/app:v1');
    await registry.push(second, 'team-b/other:v1');
    const drp = await startDrpFront(h, { host: REGISTRY, port: registry.port });
    await registry.counter.settle();
    registry.counter.reset();

    await h.pullImage({ hostPort: drp.hostPort, certDir: drp.certDir }, 'team-a/app:v1');
    await until(() => drp.cache.stats().activeFills === 0);
    const before = drp.cache.stats();
    await h.pullImage({ hostPort: drp.hostPort, certDir: drp.certDir }, 'team-b/other:v1');
    await until(() => drp.cache.stats().activeFills === 0);
    await registry.counter.settle();
    const sharedGets = registry.counter
      .requests({ kind: 'blob', method: 'GET' })
      .filter((r) => r.path.endsWith(shared.digest));
    assert.equal(sharedGets.length, 1, registry.counter.summary());
    assert.equal(sharedGets[0]?.repo, 'team-a/app');
    // The second pull added its own config and layer, not another copy of the shared layer.
    const after = drp.cache.stats();
    assert.ok(after.bytes - before.bytes < 2_000_000, `grew by ${after.bytes - before.bytes}`);
  });

  test('16 concurrent requests for one uncached 50 MB blob: one upstream GET, identical correct bytes', async (t) => {
    const h = createHarness(t);
    const registry = await h.startRegistry();
    const image = await h.createImage({ layers: [50 * 1024 * 1024] });
    await registry.push(image, 'big/blob:v1');
    const drp = await startDrpFront(h, { host: REGISTRY, port: registry.port });
    const layer = image.layers[0] as Layer;
    await registry.counter.settle();
    registry.counter.reset();

    const responses = await Promise.all(
      Array.from({ length: 16 }, () => fetchHashed(drp, blobUrl('big/blob', layer.digest))),
    );
    for (const r of responses) {
      assert.equal(r.status, 200);
      assert.equal(r.complete, true);
      assert.equal(r.bytes, layer.size);
      assert.equal(r.digest, layer.digest);
    }
    await registry.counter.settle();
    assert.equal(registry.counter.count({ kind: 'blob', method: 'GET' }), 1, registry.counter.summary());
    assert.equal(drp.cache.stats().fills, 1);
  });

  for (const fault of ['truncate', 'corrupt', 'stall'] as const) {
    test(`an upstream that ${fault}s a blob leaves nothing cached and the client sees an error`, async (t) => {
      const h = createHarness(t);
      const registry = await h.startRegistry();
      const image = await h.createImage({ layers: [4_000_000] });
      await registry.push(image, 'faulty/app:v1');
      const layer = image.layers[0] as Layer;
      const front = await h.startFront({
        upstream: registry,
        names: [REGISTRY],
        onRequest: (req, _res, forward) => {
          if (!req.url?.includes('/blobs/sha256:')) return forward();
          if (fault === 'truncate') return forward({ truncateAfter: 1_000_000 });
          if (fault === 'corrupt') return forward({ corruptAt: 3_999_000 });
          return forward({ stallAfter: { bytes: 2_000_000, ms: Number.POSITIVE_INFINITY } });
        },
      });
      const drp = await startDrpFront(
        h,
        { host: REGISTRY, port: front.port },
        { upstream: { readTimeout: '1s' } },
      );
      const failures: string[] = [];
      drp.cache.events.on('verify-failed', (e) => failures.push(e.reason));

      const r = await fetchHashed(drp, blobUrl('faulty/app', layer.digest));
      const seen = JSON.stringify({ status: r.status, bytes: r.bytes, complete: r.complete, failures });
      assert.equal(r.complete, false, `the client must see an error, not a complete response: ${seen}`);
      assert.ok(r.bytes < layer.size, seen);
      assert.equal(drp.cache.stats().entries, 0, seen);
      assert.deepEqual(failures, [fault === 'corrupt' ? 'mismatch' : 'truncated'], seen);

      // Once upstream behaves, the blob is fetched again and cached.
      front.setInterceptor(undefined);
      const ok = await fetchHashed(drp, blobUrl('faulty/app', layer.digest));
      assert.equal(ok.digest, layer.digest);
      await until(() => drp.cache.stats().entries === 1);
    });
  }

  test('eviction keeps the cache under its cap and evicts the least recently used', async (t) => {
    const h = createHarness(t);
    const registry = await h.startRegistry();
    const image = await h.createImage({ layers: [1_000_000, 1_000_000, 1_000_000, 1_000_000] });
    await registry.push(image, 'lru/app:v1');
    const drp = await startDrpFront(h, { host: REGISTRY, port: registry.port }, { maxSize: 3_200_000 });
    const [a, b, c, d] = image.layers as [Layer, Layer, Layer, Layer];
    const evicted: string[] = [];
    drp.cache.events.on('evict', (e) => evicted.push(e.digest));
    for (const [i, layer] of [a, b, c].entries()) {
      assert.equal((await fetchHashed(drp, blobUrl('lru/app', layer.digest))).digest, layer.digest);
      await until(() => drp.cache.stats().entries === i + 1);
    }
    // Read a again: b is now the least recently used.
    const again = await fetchHashed(drp, blobUrl('lru/app', a.digest));
    assert.equal(again.headers['x-docker-registry-proxy-cache-upstream-status'], 'HIT');
    assert.equal((await fetchHashed(drp, blobUrl('lru/app', d.digest))).digest, d.digest);
    await until(() => evicted.length > 0 && drp.cache.stats().entries === 3);
    assert.deepEqual(evicted, [b.digest]);
    const stats = drp.cache.stats();
    assert.ok(stats.bytes <= 3_200_000, `cache holds ${stats.bytes} bytes`);
    assert.equal(stats.entries, 3);

    await registry.counter.settle();
    registry.counter.reset();
    for (const layer of [a, c, d]) await fetchHashed(drp, blobUrl('lru/app', layer.digest));
    await registry.counter.settle();
    assert.equal(registry.counter.count({ kind: 'blob' }), 0, 'a, c and d are still cached');
  });

  test('a 307 to a CDN with a signed query is followed without credentials; the blob is cached by digest', async (t) => {
    const h = createHarness(t);
    const registry = await h.startRegistry({ auth: { username: 'alice', password: 's3cret' } });
    const image = await h.createImage({ layers: [2_000_000] });
    await registry.push(image, 'private/app:v1');
    const layer = image.layers[0] as Layer;

    // The CDN serves the blob file for a signed URL, and refuses anything with credentials.
    const cdn = await h.startHttpsServer(
      (req: IncomingMessage, res: ServerResponse) => {
        const url = new URL(req.url ?? '/', 'https://cdn.test');
        if (req.headers.authorization || url.searchParams.get('Signature') !== 'abc') {
          res.writeHead(403);
          res.end('forbidden');
          return;
        }
        res.writeHead(200, { 'content-length': layer.size, 'content-type': 'application/octet-stream' });
        createReadStream(layer.path).pipe(res);
      },
      [CDN],
    );
    // The registry front answers blob GETs with a 307 to the CDN once the client is authorised.
    const front = await h.startFront({
      upstream: registry,
      names: [REGISTRY],
      onRequest: async (req, res, forward) => {
        if (req.method !== 'GET' || !req.url?.includes('/blobs/sha256:')) return forward();
        const probe = await forward.raw({ method: 'HEAD' });
        probe.resume();
        if (probe.statusCode !== 200) return forward();
        res.writeHead(307, {
          location: `https://${CDN}:${cdn.port}/blobs/${layer.digest}?Signature=abc&Expires=2000000000`,
        });
        res.end();
      },
    });
    const drp = await startDrpFront(
      h,
      { host: REGISTRY, port: front.port },
      { upstream: { mappings: { [REGISTRY]: '127.0.0.1', [CDN]: '127.0.0.1' } } },
    );
    const basic = `Basic ${Buffer.from('alice:s3cret').toString('base64')}`;
    const r = await fetchHashed(drp, blobUrl('private/app', layer.digest), { authorization: basic });
    assert.equal(r.status, 200);
    assert.equal(r.digest, layer.digest);
    await until(() => drp.cache.stats().entries === 1);
    await cdn.counter.settle();
    await front.counter.settle();
    const cdnRequests = cdn.counter.requests();
    assert.equal(cdnRequests.length, 1);
    assert.equal(cdnRequests[0]?.headers?.authorization, undefined, 'credentials never reach the CDN');
    assert.ok(front.counter.requests({ kind: 'blob' }).every((q) => q.headers?.authorization === basic));

    // Cached under the digest: the next request (another repository name) is a hit.
    const hit = await fetchHashed(drp, blobUrl('private/app', layer.digest), { authorization: basic });
    assert.equal(hit.digest, layer.digest);
    assert.equal(hit.headers['x-docker-registry-proxy-cache-upstream-status'], 'HIT');
    await cdn.counter.settle();
    assert.equal(cdn.counter.count(), 1);
  });

  test('HEAD on a cached blob is answered locally; HEAD on a miss is a HEAD upstream', async (t) => {
    const h = createHarness(t);
    const registry = await h.startRegistry();
    const image = await h.createImage({ layers: [1_500_000] });
    await registry.push(image, 'head/app:v1');
    const layer = image.layers[0] as Layer;
    const drp = await startDrpFront(h, { host: REGISTRY, port: registry.port });
    await registry.counter.settle();
    registry.counter.reset();
    const head = () =>
      new Promise<number>((resolve, reject) => {
        const req = httpsRequest(
          {
            host: '127.0.0.1',
            port: drp.port,
            method: 'HEAD',
            path: blobUrl('head/app', layer.digest),
            ca: drp.caCertPem,
            agent: false,
          },
          (res) => {
            res.resume();
            resolve(Number(res.headers['content-length']));
          },
        );
        req.once('error', reject);
        req.end();
      });
    assert.equal(await head(), layer.size);
    await registry.counter.settle();
    assert.equal(registry.counter.count({ kind: 'blob', method: 'HEAD' }), 1);
    assert.equal(registry.counter.count({ kind: 'blob', method: 'GET' }), 0);
    await fetchHashed(drp, blobUrl('head/app', layer.digest));
    await until(() => drp.cache.stats().entries === 1);
    await registry.counter.settle();
    registry.counter.reset();
    assert.equal(await head(), layer.size);
    await registry.counter.settle();
    assert.equal(registry.counter.count(), 0);
  });
});
