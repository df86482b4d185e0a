// Tag manifests against the real registry, pulled with skopeo through drp: each tier's TTL,
// expiry with HEAD revalidation (digest unchanged and changed), and two media types for one tag.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startMiniProxy } from '../fakes/mini-proxy.ts';
import { createHarness, MediaTypes } from '../harness/index.ts';

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;

test('tiers, expiry and HEAD revalidation with skopeo pulls', async (t) => {
  const h = createHarness(t);
  const registry = await h.startRegistry();
  const v1 = await h.createImage({ layers: [100_000], labels: { v: '1' } });
  const v2 = await h.createImage({ layers: [100_000], labels: { v: '2' } });
  for (const tag of ['latest', 'stable', '1.2.3']) await registry.push(v1, `team/app:${tag}`);
  let now = Date.now();
  const proxy = await startMiniProxy(h, {
    names: ['registry.test'],
    manifestCache: { enabled: true },
    now: () => now,
  });
  const pull = (tag: string) =>
    h.pullImage(registry.namedHostPort, `team/app:${tag}`, {
      proxy: proxy.url,
      certDir: proxy.certDir,
      creds: null,
    });
  const manifestRequests = async (tag: string) => {
    await registry.counter.settle();
    const all = registry.counter.requests({ kind: 'manifest', reference: tag });
    registry.counter.reset();
    return all.map((r) => r.method);
  };
  registry.counter.reset();

  for (const tag of ['latest', 'stable', '1.2.3']) {
    assert.equal((await pull(tag)).manifestDigest, v1.manifestDigest);
    assert.deepEqual(await manifestRequests(tag), ['GET'], `${tag}: first pull fetches`);
  }
  const types = proxy.outcomes.filter((o) => o.path.includes('/manifests/')).map((o) => o.requestType);
  assert.deepEqual(types, ['manifest-default', 'manifest-primary', 'manifest-secondary']);

  // Within every TTL (primary 10m is the shortest): nothing upstream.
  now += 9 * MINUTE;
  for (const tag of ['latest', 'stable', '1.2.3']) {
    assert.equal((await pull(tag)).manifestDigest, v1.manifestDigest);
    assert.deepEqual(await manifestRequests(tag), [], `${tag}: served from the cache`);
  }

  // Primary expired (10m), default (1h) and secondary (60d) not: one HEAD, digest unchanged.
  now += 2 * MINUTE;
  await pull('stable');
  assert.deepEqual(await manifestRequests('stable'), ['HEAD']);
  await pull('latest');
  assert.deepEqual(await manifestRequests('latest'), []);
  assert.equal(proxy.outcomes.filter((o) => o.cacheStatus === 'REVALIDATED').length, 1);

  // The tag moves upstream; once the default TTL is over, HEAD sees it and GET fetches it.
  await registry.push(v2, 'team/app:latest');
  registry.counter.reset();
  assert.equal((await pull('latest')).manifestDigest, v1.manifestDigest, 'still within the TTL');
  now += 61 * MINUTE;
  assert.equal((await pull('latest')).manifestDigest, v2.manifestDigest);
  assert.deepEqual(await manifestRequests('latest'), ['HEAD', 'GET']);

  // Secondary: 60 days.
  now += 58 * DAY;
  await pull('1.2.3');
  assert.deepEqual(await manifestRequests('1.2.3'), []);
  now += 2 * DAY;
  await pull('1.2.3');
  assert.deepEqual(await manifestRequests('1.2.3'), ['HEAD']);
});

test('two media types for one tag are cached apart', async (t) => {
  const h = createHarness(t);
  const registry = await h.startRegistry();
  const index = await h.createIndex(
    [
      { os: 'linux', architecture: 'amd64' },
      { os: 'linux', architecture: 'arm64' },
    ],
    [50_000],
  );
  await registry.push(index, 'team/multi:latest');
  const single = await h.createImage({ layers: [50_000], format: 'docker' });
  await registry.push(single, 'team/multi:docker');
  const proxy = await startMiniProxy(h, { names: ['registry.test'], manifestCache: { enabled: true } });

  const curl = (tag: string, accept: string) =>
    h
      .run('curl', [
        '-s',
        '-D',
        '-',
        '--proxy',
        proxy.url,
        '--cacert',
        `${proxy.certDir}/ca.crt`,
        '-H',
        `Accept: ${accept}`,
        `https://${registry.namedHostPort}/v2/team/multi/manifests/${tag}`,
      ])
      .then((r) => r.stdout);
  const direct = (tag: string, accept: string) =>
    registry.request(`/v2/team/multi/manifests/${tag}`, { headers: { accept } });

  const accepts = [
    MediaTypes.ociIndex,
    `${MediaTypes.ociManifest}, ${MediaTypes.dockerManifest}`,
    MediaTypes.dockerManifest,
  ];
  for (const tag of ['latest', 'docker']) {
    for (const accept of accepts) {
      const want = await direct(tag, accept);
      for (const round of ['first', 'cached']) {
        const got = await curl(tag, accept);
        // The first status line is the proxy's answer to CONNECT.
        const status = Number([...got.matchAll(/^HTTP\/[\d.]+ (\d+)/gm)].at(-1)?.[1]);
        assert.equal(status, want.status, `${tag} / ${accept} (${round})`);
        // Schema 1 conversions are signed afresh on every request: compare the others byte for byte.
        const schema1 = String(want.headers['content-type']).includes('manifest.v1+');
        if (want.status === 200 && !schema1) {
          assert.ok(got.endsWith(want.text()), `${tag} / ${accept} (${round}): same body as the registry`);
          assert.match(
            got,
            new RegExp(`docker-content-digest: ${want.headers['docker-content-digest']}`, 'i'),
          );
        }
      }
    }
  }
  const hits = proxy.outcomes.filter((o) => o.cacheStatus === 'HIT').length;
  assert.ok(hits >= 2, `cached answers were served (${hits} hits)`);
});
