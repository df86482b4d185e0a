// Docker Hub's rate limit: a front speaking the Hub protocol answers 429 TOOMANYREQUESTS after N
// manifest GETs. Once an image is cached, repeated pulls keep working: from the tag cache within
// its TTL, by HEAD revalidation after it, and stale (cache off, after a restart, during an outage).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startHubFront } from '../fakes/hub-front.ts';
import { startMiniProxy } from '../fakes/mini-proxy.ts';
import { startTokenServer } from '../fakes/token-server.ts';
import { createHarness } from '../harness/index.ts';

async function setup(t: Parameters<typeof createHarness>[0]) {
  const h = createHarness(t);
  const registry = await h.startRegistry();
  const image = await h.createImage({ layers: [120_000, 80_000] });
  await registry.push(image, 'library/app:latest');
  const tokens = await startTokenServer(h, {
    service: 'registry.docker.io',
    issuer: 'auth.docker.io',
    users: {},
    publicRepos: ['library/app'],
    names: ['auth.test'],
  });
  const hub = await startHubFront(h, { upstream: registry, tokens, limit: 1 });
  return { h, registry, image, tokens, hub, ref: `hub.test:${hub.port}` };
}

test('rate-limited upstream, manifest cache on: cached pulls keep working', async (t) => {
  const { h, image, hub, ref } = await setup(t);
  let now = Date.now();
  const proxy = await startMiniProxy(h, {
    names: ['hub.test', 'auth.test'],
    manifestCache: { enabled: true },
    now: () => now,
  });
  const pull = () =>
    h.pullImage(ref, 'library/app:latest', { proxy: proxy.url, certDir: proxy.certDir, creds: null });

  assert.equal((await pull()).manifestDigest, image.manifestDigest);
  assert.equal(hub.pulls(), 1, 'the first pull used the whole allowance');
  for (let i = 0; i < 3; i++) assert.equal((await pull()).manifestDigest, image.manifestDigest);
  // After the TTL: a HEAD (free) revalidates.
  now += 2 * 3_600_000;
  assert.equal((await pull()).manifestDigest, image.manifestDigest);
  assert.equal(hub.pulls(), 1);
  assert.equal(hub.counter.count({ kind: 'manifest', status: 429 }), 0, 'no pull ever hit the limit');
  assert.ok(proxy.outcomes.some((o) => o.cacheStatus === 'REVALIDATED'));
  // Every pull's token was issued to an anonymous request, so all shared one auth class.
  assert.ok(proxy.outcomes.filter((o) => o.requestType === 'auth').length >= 4);
});

test('rate-limited upstream, manifest cache off: the 429 is answered stale; and after a restart', async (t) => {
  const { h, image, hub, ref } = await setup(t);
  const cacheDir = h.tempDir('drp-cache');
  const proxy = await startMiniProxy(h, { names: ['hub.test', 'auth.test'], cacheDir });
  const pull = (p: { url: string; certDir: string }) =>
    h.pullImage(ref, 'library/app:latest', { proxy: p.url, certDir: p.certDir, creds: null });

  assert.equal((await pull(proxy)).manifestDigest, image.manifestDigest);
  for (let i = 0; i < 2; i++) assert.equal((await pull(proxy)).manifestDigest, image.manifestDigest);
  assert.equal(hub.counter.count({ kind: 'manifest', method: 'GET', status: 429 }), 2);
  assert.equal(proxy.stale.length, 2);
  assert.equal(proxy.stale[0]?.reason, 'upstream 429');
  await proxy.close();

  const restarted = await startMiniProxy(h, { names: ['hub.test', 'auth.test'], cacheDir });
  assert.equal((await pull(restarted)).manifestDigest, image.manifestDigest);
  assert.equal(restarted.stale.length, 1);

  // A full outage: the ping is answered with the last challenge, the manifest stale, the
  // blobs from the cache.
  hub.down = true;
  assert.equal((await pull(restarted)).manifestDigest, image.manifestDigest);
  assert.ok(
    restarted.outcomes.some((o) => o.requestType === 'ping' && o.cacheStatus === 'STALE' && o.status === 401),
  );
});

test('with nothing cached, the 429 reaches the client unchanged', async (t) => {
  const { h, hub, ref, tokens } = await setup(t);
  hub.limit = 0;
  const proxy = await startMiniProxy(h, {
    names: ['hub.test', 'auth.test'],
    manifestCache: { enabled: true },
  });
  const curl = (url: string, headers: string[] = []) =>
    h.run('curl', [
      '-s',
      '-D',
      '-',
      '--proxy',
      proxy.url,
      '--cacert',
      `${proxy.certDir}/ca.crt`,
      ...headers.flatMap((x) => ['-H', x]),
      url,
    ]);
  // (skopeo itself keeps retrying a 429, so a plain HTTP client shows the answer.)
  const token = (await curl(`${tokens.realm}?service=registry.docker.io&scope=repository:library/app:pull`))
    .stdout;
  const jwt = /"token":"([^"]+)"/.exec(token)?.[1] ?? '';
  const res = (await curl(`https://${ref}/v2/library/app/manifests/latest`, [`Authorization: Bearer ${jwt}`]))
    .stdout;
  const statuses = [...res.matchAll(/^HTTP\/[\d.]+ (\d+)/gm)].map((m) => m[1]);
  assert.equal(statuses.at(-1), '429');
  assert.match(res, /^retry-after: 21600\r?$/im);
  assert.match(res, /"code":"TOOMANYREQUESTS"/);
  assert.doesNotMatch(res, /x-drp-stale/i);
});
