// Programmable TLS fronts and fake HTTPS hosts, driven by a real skopeo against a real registry.
import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { test } from 'node:test';
import {
  blobPath,
  createHarness,
  type Harness,
  type ImageInfo,
  pushImage,
  type Registry,
  RunError,
} from './index.ts';

async function seeded(h: Harness): Promise<{ registry: Registry; image: ImageInfo }> {
  const registry = await h.startRegistry();
  const image = await h.createImage({ layers: [50_000, 120_000] });
  await registry.push(image, 'front/app:v1');
  await registry.counter.settle();
  registry.counter.reset();
  return { registry, image };
}

const isBlobGet = (method?: string, url?: string) => method === 'GET' && /\/blobs\/sha256:/.test(url ?? '');

test('a front forwards pulls and pushes byte for byte and records them', async (t) => {
  const h = createHarness(t);
  const { registry, image } = await seeded(h);
  const front = await h.startFront({ upstream: registry });

  const pulled = await h.pullImage(front, 'front/app:v1');
  assert.equal(pulled.manifestDigest, image.manifestDigest);
  assert.deepEqual(
    pulled.layers,
    image.layers.map((l) => l.digest),
  );
  await registry.counter.settle();
  const blobGets = (c: Registry['counter']) =>
    c.requests({ method: 'GET', kind: 'blob' }).map((r) => r.reference);
  assert.deepEqual(blobGets(front.counter).sort(), blobGets(registry.counter).sort());
  assert.equal(front.counter.bytes({ kind: 'blob' }), registry.counter.bytes({ kind: 'blob' }));
  assert.ok(front.counter.requests()[0]?.headers?.['user-agent']);

  // Pushing through the front works too: Host is kept, so upload URLs point back at it.
  const other = await h.createImage({ layers: [3000] });
  await pushImage(other, front, 'front/pushed:v1');
  assert.ok(front.counter.count({ kind: 'upload' }) > 0);
  const back = await h.pullImage(registry, 'front/pushed:v1');
  assert.equal(back.manifestDigest, other.manifestDigest);
});

test('an intercepted 503 reaches the client', async (t) => {
  const h = createHarness(t);
  const { registry } = await seeded(h);
  const front = await h.startFront({
    upstream: registry,
    onRequest: (req, res, forward) => {
      if (isBlobGet(req.method, req.url)) {
        res.writeHead(503, { 'content-type': 'application/json' });
        res.end('{"errors":[{"code":"UNAVAILABLE","message":"injected"}]}');
        return;
      }
      return forward();
    },
  });
  await assert.rejects(h.pullImage(front, 'front/app:v1'), (e: unknown) => {
    assert.ok(e instanceof RunError);
    assert.match(e.result.stderr, /503|Service Unavailable|injected/i);
    return true;
  });
  assert.ok(front.counter.count({ kind: 'blob', status: 503 }) >= 1);
  await registry.counter.settle();
  assert.equal(registry.counter.count({ kind: 'blob', method: 'GET' }), 0, 'nothing forwarded');
});

test('forwarded responses can be corrupted, truncated and stalled', async (t) => {
  const h = createHarness(t);
  const { registry, image } = await seeded(h);
  const front = await h.startFront({ upstream: registry });
  const bigLayer = image.layers[1]!.digest;

  front.setInterceptor((req, _res, forward) =>
    forward(req.url?.endsWith(bigLayer) && req.method === 'GET' ? { corruptAt: 1000 } : {}),
  );
  await assert.rejects(h.pullImage(front, 'front/app:v1'), /digest|checksum|hash/i);

  front.setInterceptor((req, _res, forward) =>
    forward(req.url?.endsWith(bigLayer) && req.method === 'GET' ? { truncateAfter: 10_000 } : {}),
  );
  await assert.rejects(h.pullImage(front, 'front/app:v1'), /EOF|unexpected|reset|closed|short/i);
  assert.ok(front.counter.requests({ reference: bigLayer, method: 'GET' }).some((r) => r.bytes === 10_000));

  front.setInterceptor((req, _res, forward) =>
    forward(
      req.url?.endsWith(bigLayer) && req.method === 'GET' ? { stallAfter: { bytes: 5000, ms: 400 } } : {},
    ),
  );
  const started = Date.now();
  const pulled = await h.pullImage(front, 'front/app:v1');
  assert.ok(Date.now() - started >= 400);
  assert.equal(pulled.manifestDigest, image.manifestDigest);
});

test('a fake CDN behind a 307 and a Docker Hub-style token server', async (t) => {
  const h = createHarness(t);
  const { registry, image } = await seeded(h);

  // The "CDN" serves blobs straight from the OCI layout.
  const cdn = await h.startHttpsServer(
    (req, res) => {
      const digest = new URL(req.url ?? '/', 'https://x').pathname.split('/').pop() ?? '';
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      createReadStream(blobPath(image.layoutDir, digest)).pipe(res);
    },
    { names: ['cdn.test'] },
  );
  const tokens = await h.startHttpsServer((req, res) => {
    const url = new URL(req.url ?? '/', 'https://x');
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token: `tok-${url.searchParams.get('scope')}`, expires_in: 300 }));
  });

  const front = await h.startFront({
    upstream: registry,
    onRequest: (req, res, forward) => {
      if (req.headers.authorization?.startsWith('Bearer tok-repository:front/app:pull') !== true) {
        res.writeHead(401, {
          'www-authenticate': `Bearer realm="${tokens.url}/token",service="front.test",scope="repository:front/app:pull"`,
          'content-type': 'application/json',
        });
        res.end('{"errors":[{"code":"UNAUTHORIZED","message":"token required"}]}');
        return;
      }
      if (isBlobGet(req.method, req.url)) {
        const digest = req.url?.split('/').pop() ?? '';
        res.writeHead(307, { location: `${cdn.url}/blobs/${digest}?sig=abc` }).end();
        return;
      }
      return forward();
    },
  });

  const pulled = await h.pullImage(front, 'front/app:v1');
  assert.equal(pulled.manifestDigest, image.manifestDigest);
  assert.ok(tokens.counter.count({ path: '/token' }) >= 1);
  const tokenReq = tokens.counter.requests()[0];
  assert.match(tokenReq?.path ?? '', /service=front\.test/);
  assert.equal(cdn.counter.count({ method: 'GET' }), 3, cdn.counter.summary()); // 2 layers + config
  assert.equal(front.counter.count({ kind: 'blob', status: 307 }), 3);
  await registry.counter.settle();
  assert.equal(registry.counter.count({ kind: 'blob', method: 'GET' }), 0);
});

test('forward.raw() hands the upstream response to the test', async (t) => {
  const h = createHarness(t);
  const { registry, image } = await seeded(h);
  const front = await h.startFront({
    upstream: registry,
    onRequest: async (_req, res, forward) => {
      const up = await forward.raw({ headers: { 'x-extra': '1' } });
      res.writeHead(up.statusCode ?? 500, { ...up.headers, 'x-seen-by-front': 'yes' });
      up.pipe(res);
    },
  });
  const got = await front.request('/v2/front/app/manifests/v1', { headers: { accept: image.mediaType } });
  assert.equal(got.status, 200);
  assert.equal(got.headers['x-seen-by-front'], 'yes');
  assert.equal(got.headers['docker-content-digest'], image.manifestDigest);
  assert.deepEqual(got.body, image.manifest);
});
