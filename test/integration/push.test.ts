// Push through drp with skopeo: refused with ALLOW_PUSH=false (405 UNSUPPORTED), streamed to the
// real registry with ALLOW_PUSH=true (multi-layer, chunked and monolithic uploads), and the
// pushed image then pulled through the cache.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startMiniProxy } from '../fakes/mini-proxy.ts';
import { createHarness, pushImage } from '../harness/index.ts';

const via = (url: string) => ({ HTTPS_PROXY: url, https_proxy: url, NO_PROXY: '', no_proxy: '' });

test('ALLOW_PUSH=false refuses a push with 405 UNSUPPORTED', async (t) => {
  const h = createHarness(t);
  const registry = await h.startRegistry({ auth: { username: 'dev', password: 'devpw' } });
  const image = await h.createImage({ layers: [100_000, 200_000] });
  const proxy = await startMiniProxy(h, { names: ['registry.test'] });
  await assert.rejects(
    pushImage(image, registry.namedHostPort, 'team/app:v1', {
      creds: 'dev:devpw',
      certDir: proxy.certDir,
      env: via(proxy.url),
    }),
    /405|method not allowed|unsupported/i,
  );
  await registry.counter.settle();
  assert.equal(registry.counter.count({ kind: 'upload' }), 0, 'nothing reached the registry');
  assert.ok(proxy.outcomes.some((o) => o.status === 405 && o.error === 'DRP_PUSH_DISABLED'));
});

test('ALLOW_PUSH=true streams a multi-layer push; the image then pulls through the cache', async (t) => {
  const h = createHarness(t);
  const registry = await h.startRegistry({ auth: { username: 'dev', password: 'devpw' } });
  const image = await h.createImage({ layers: [3_000_000, 1_000_000, 200_000, 50_000] });
  const proxy = await startMiniProxy(h, {
    names: ['registry.test'],
    allowPush: true,
    manifestCache: { enabled: true },
  });
  await pushImage(image, registry.namedHostPort, 'team/app:v1', {
    creds: 'dev:devpw',
    certDir: proxy.certDir,
    env: via(proxy.url),
  });
  await registry.counter.settle();
  assert.ok(registry.counter.count({ kind: 'upload' }) >= 4, registry.counter.summary({ kind: 'upload' }));
  assert.ok(registry.counter.count({ kind: 'manifest', method: 'PUT', status: 201 }) === 1);
  assert.ok(proxy.outcomes.filter((o) => o.requestType === 'upload').every((o) => o.status < 400));

  // Pushed bytes are what the layout holds, and the image pulls through the cache.
  const direct = await h.pullImage(registry, 'team/app:v1', { creds: 'dev:devpw' });
  assert.equal(direct.manifestDigest, image.manifestDigest);
  const pulled = await h.pullImage(registry.namedHostPort, 'team/app:v1', {
    proxy: proxy.url,
    certDir: proxy.certDir,
    creds: 'dev:devpw',
  });
  assert.equal(pulled.manifestDigest, image.manifestDigest);
  assert.deepEqual(
    pulled.layers,
    image.layers.map((l) => l.digest),
  );

  // The same layers into another repository: skopeo mounts them across repositories.
  registry.counter.reset();
  await pushImage(image, registry.namedHostPort, 'team/other:v1', {
    creds: 'dev:devpw',
    certDir: proxy.certDir,
    env: via(proxy.url),
  });
  await registry.counter.settle();
  const mounts = registry.counter.requests({ kind: 'upload', method: 'POST', path: /[?&]mount=/ });
  assert.ok(mounts.length >= 1, registry.counter.summary());
  assert.ok(
    mounts.every((m) => m.status === 201),
    registry.counter.summary({ kind: 'upload' }),
  );

  // Re-pushing the tag with new content through drp drops the cached tag at once.
  const next = await h.createImage({ layers: [10_000], labels: { v: '2' } });
  await pushImage(next, registry.namedHostPort, 'team/app:v1', {
    creds: 'dev:devpw',
    certDir: proxy.certDir,
    env: via(proxy.url),
  });
  const again = await h.pullImage(registry.namedHostPort, 'team/app:v1', {
    proxy: proxy.url,
    certDir: proxy.certDir,
    creds: 'dev:devpw',
  });
  assert.equal(again.manifestDigest, next.manifestDigest);
});
