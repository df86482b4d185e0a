// Tag manifests by tier (HIT within TTL, HEAD revalidation after it, digest changed), keys by
// Accept and registry, manifests by digest, against an in-process fake upstream and a fake clock.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { type Driven, drive } from '../../../test/fakes/drive.ts';
import {
  DOCKER_MANIFEST,
  type FakeRegistry,
  manifestBody,
  OCI_INDEX,
  OCI_MANIFEST,
  startFakeRegistry,
} from '../../../test/fakes/fake-registry.ts';
import { normaliseAccept } from '../src/store/tag-index.ts';

const MINUTE = 60_000;
const ACCEPT = { accept: `${OCI_MANIFEST}, ${DOCKER_MANIFEST}` };

describe('tag manifests with the manifest cache on', () => {
  let upstream: FakeRegistry;
  let proxy: Driven;
  let now = 1_000_000;

  before(async () => {
    upstream = await startFakeRegistry();
    proxy = await drive({
      target: upstream.target,
      manifestCache: { enabled: true },
      now: () => now,
    });
  });
  after(async () => {
    await proxy.close();
    await upstream.close();
  });
  beforeEach(() => {
    upstream.log.length = 0;
    upstream.override = undefined;
  });

  test('a default-tier tag is fetched once, then served from the cache for GET and HEAD', async () => {
    const digest = upstream.setManifest('library/app', 'latest', manifestBody(OCI_MANIFEST, 'v1'));
    const first = await proxy.send('GET', '/v2/library/app/manifests/latest', ACCEPT);
    assert.equal(first.status, 200);
    assert.equal(first.headers['docker-content-digest'], digest);
    assert.equal(first.headers['x-docker-registry-proxy-cache-upstream-status'], 'MISS');
    assert.equal(first.headers['x-docker-registry-proxy-cache-type'], 'manifest-default');
    assert.equal(upstream.count({ method: 'GET' }), 1);

    now += 59 * MINUTE; // default tier: 1h
    const again = await proxy.send('GET', '/v2/library/app/manifests/latest', ACCEPT);
    assert.equal(again.status, 200);
    assert.deepEqual(again.body, first.body);
    assert.equal(again.headers['content-type'], OCI_MANIFEST);
    assert.equal(again.headers['x-docker-registry-proxy-cache-upstream-status'], 'HIT');
    const head = await proxy.send('HEAD', '/v2/library/app/manifests/latest', ACCEPT);
    assert.equal(head.status, 200);
    assert.equal(head.headers['docker-content-digest'], digest);
    assert.equal(head.headers['content-length'], String(first.body.length));
    assert.equal(head.body.length, 0);
    assert.equal(upstream.log.length, 1, 'no upstream request within the TTL');
  });

  test('after the TTL, an unchanged digest is revalidated with one upstream HEAD', async () => {
    upstream.setManifest('library/reval', 'latest', manifestBody(OCI_MANIFEST, 'r1'));
    await proxy.send('GET', '/v2/library/reval/manifests/latest', ACCEPT);
    now += 61 * MINUTE;
    const res = await proxy.send('GET', '/v2/library/reval/manifests/latest', ACCEPT);
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-docker-registry-proxy-cache-upstream-status'], 'REVALIDATED');
    assert.equal(upstream.count({ method: 'GET' }), 1);
    assert.equal(upstream.count({ method: 'HEAD' }), 1);
    // Revalidation restarts the TTL.
    now += 30 * MINUTE;
    const hit = await proxy.send('GET', '/v2/library/reval/manifests/latest', ACCEPT);
    assert.equal(hit.headers['x-docker-registry-proxy-cache-upstream-status'], 'HIT');
    assert.equal(upstream.log.length, 2);
  });

  test('after the TTL, a changed digest is fetched with GET', async () => {
    upstream.setManifest('library/moving', 'latest', manifestBody(OCI_MANIFEST, 'm1'));
    await proxy.send('GET', '/v2/library/moving/manifests/latest', ACCEPT);
    const next = upstream.setManifest('library/moving', 'latest', manifestBody(OCI_MANIFEST, 'm2'));
    now += 61 * MINUTE;
    const res = await proxy.send('GET', '/v2/library/moving/manifests/latest', ACCEPT);
    assert.equal(res.headers['docker-content-digest'], next);
    assert.equal(res.headers['x-docker-registry-proxy-cache-upstream-status'], 'MISS');
    assert.deepEqual(
      upstream.log.map((r) => r.method),
      ['GET', 'HEAD', 'GET'],
    );
  });

  test("a client's HEAD is never turned into an upstream GET", async () => {
    const digest = upstream.setManifest('library/headonly', 'latest', manifestBody(OCI_MANIFEST, 'h1'));
    const cold = await proxy.send('HEAD', '/v2/library/headonly/manifests/latest', ACCEPT);
    assert.equal(cold.status, 200);
    assert.equal(cold.headers['docker-content-digest'], digest);
    await proxy.send('GET', '/v2/library/headonly/manifests/latest', ACCEPT);
    const changed = upstream.setManifest('library/headonly', 'latest', manifestBody(OCI_MANIFEST, 'h2'));
    now += 61 * MINUTE;
    const expired = await proxy.send('HEAD', '/v2/library/headonly/manifests/latest', ACCEPT);
    assert.equal(expired.headers['docker-content-digest'], changed);
    assert.deepEqual(
      upstream.log.map((r) => r.method),
      ['HEAD', 'GET', 'HEAD'],
    );
  });

  test('containerd-style HEAD by tag then GET by digest: the next GET by tag is a hit', async () => {
    const digest = upstream.setManifest('library/ctr', 'latest', manifestBody(OCI_INDEX, 'ctr'));
    const head = await proxy.send('HEAD', '/v2/library/ctr/manifests/latest', { accept: OCI_INDEX });
    assert.equal(head.headers['docker-content-digest'], digest);
    const byDigest = await proxy.send('GET', `/v2/library/ctr/manifests/${digest}`, { accept: OCI_INDEX });
    assert.equal(byDigest.status, 200);
    const byTag = await proxy.send('GET', '/v2/library/ctr/manifests/latest', { accept: OCI_INDEX });
    assert.equal(byTag.headers['x-docker-registry-proxy-cache-upstream-status'], 'HIT');
    assert.deepEqual(byTag.body, byDigest.body);
    assert.deepEqual(
      upstream.log.map((r) => r.method),
      ['HEAD', 'GET'],
    );
  });

  test('primary and secondary tiers use their own TTLs', async () => {
    upstream.setManifest('library/tiers', 'stable-alpine', manifestBody(OCI_MANIFEST, 's'));
    upstream.setManifest('library/tiers', '1.2.3', manifestBody(OCI_MANIFEST, 'v'));
    const p = await proxy.send('GET', '/v2/library/tiers/manifests/stable-alpine', ACCEPT);
    assert.equal(p.headers['x-docker-registry-proxy-cache-type'], 'manifest-primary');
    const s = await proxy.send('GET', '/v2/library/tiers/manifests/1.2.3', ACCEPT);
    assert.equal(s.headers['x-docker-registry-proxy-cache-type'], 'manifest-secondary');
    now += 11 * MINUTE; // primary: 10m, secondary: 60d
    const p2 = await proxy.send('GET', '/v2/library/tiers/manifests/stable-alpine', ACCEPT);
    assert.equal(p2.headers['x-docker-registry-proxy-cache-upstream-status'], 'REVALIDATED');
    now += 59 * 24 * 60 * MINUTE;
    const s2 = await proxy.send('GET', '/v2/library/tiers/manifests/1.2.3', ACCEPT);
    assert.equal(s2.headers['x-docker-registry-proxy-cache-upstream-status'], 'HIT');
    now += 2 * 24 * 60 * MINUTE;
    const s3 = await proxy.send('GET', '/v2/library/tiers/manifests/1.2.3', ACCEPT);
    assert.equal(s3.headers['x-docker-registry-proxy-cache-upstream-status'], 'REVALIDATED');
  });

  test('two Accept headers for one tag never collide', async () => {
    const oci = upstream.setManifest('library/multi', 'latest', manifestBody(OCI_INDEX, 'idx'));
    const docker = upstream.setManifest('library/multi', 'latest', manifestBody(DOCKER_MANIFEST, 'dkr'));
    const a = await proxy.send('GET', '/v2/library/multi/manifests/latest', { accept: OCI_INDEX });
    const b = await proxy.send('GET', '/v2/library/multi/manifests/latest', { accept: DOCKER_MANIFEST });
    assert.equal(a.headers['docker-content-digest'], oci);
    assert.equal(b.headers['docker-content-digest'], docker);
    const a2 = await proxy.send('GET', '/v2/library/multi/manifests/latest', { accept: OCI_INDEX });
    const b2 = await proxy.send('GET', '/v2/library/multi/manifests/latest', { accept: DOCKER_MANIFEST });
    assert.equal(a2.headers['docker-content-digest'], oci);
    assert.equal(a2.headers['content-type'], OCI_INDEX);
    assert.equal(b2.headers['docker-content-digest'], docker);
    assert.equal(b2.headers['content-type'], DOCKER_MANIFEST);
    assert.equal(a2.headers['x-docker-registry-proxy-cache-upstream-status'], 'HIT');
    assert.equal(b2.headers['x-docker-registry-proxy-cache-upstream-status'], 'HIT');
    // Header order and q-values do not split the key.
    const c = await proxy.send('GET', '/v2/library/multi/manifests/latest', { accept: `${OCI_INDEX};q=0.9` });
    assert.equal(c.headers['x-docker-registry-proxy-cache-upstream-status'], 'HIT');
    assert.equal(upstream.count({ method: 'GET' }), 2);
  });

  test('manifests by digest are served from the cache, verified when fetched', async () => {
    const digest = upstream.setManifest('library/bydigest', 'v9', manifestBody(OCI_MANIFEST, 'd'));
    const first = await proxy.send('GET', `/v2/library/bydigest/manifests/${digest}`, ACCEPT);
    assert.equal(first.status, 200);
    assert.equal(first.headers['x-docker-registry-proxy-cache-type'], 'manifest-by-digest');
    assert.equal(first.headers['x-docker-registry-proxy-cache-upstream-status'], 'MISS');
    const head = await proxy.send('HEAD', `/v2/library/bydigest/manifests/${digest}`);
    assert.equal(head.headers['x-docker-registry-proxy-cache-upstream-status'], 'HIT');
    assert.equal(head.headers['content-type'], OCI_MANIFEST);
    // Another repository (or registry) naming the same digest shares the copy.
    const other = await proxy.send('GET', `/v2/other/repo/manifests/${digest}`);
    assert.equal(other.headers['x-docker-registry-proxy-cache-upstream-status'], 'HIT');
    assert.deepEqual(other.body, first.body);
    assert.equal(upstream.log.length, 1);
  });

  test('a manifest whose bytes do not match its digest is refused and not stored', async () => {
    const digest = upstream.setManifest('library/liar', 'v1', manifestBody(OCI_MANIFEST, 'liar'));
    upstream.override = (req, res) => {
      if (!req.url?.includes('/manifests/')) return false;
      const body = JSON.stringify(manifestBody(OCI_MANIFEST, 'tampered'));
      res.writeHead(200, { 'content-type': OCI_MANIFEST, 'docker-content-digest': digest });
      res.end(body);
      return true;
    };
    const res = await proxy.send('GET', `/v2/library/liar/manifests/${digest}`);
    assert.equal(res.status, 502);
    assert.equal(res.json<{ errors: { code: string }[] }>().errors[0]?.code, 'DIGEST_INVALID');
    const tag = await proxy.send('GET', '/v2/library/liar/manifests/v1');
    assert.equal(tag.status, 502);
    upstream.override = undefined;
    const good = await proxy.send('GET', `/v2/library/liar/manifests/${digest}`);
    assert.equal(good.status, 200);
    assert.equal(good.headers['x-docker-registry-proxy-cache-upstream-status'], 'MISS');
  });

  test('404 and other refusals pass through unchanged and are not cached', async () => {
    const res = await proxy.send('GET', '/v2/library/nothing/manifests/latest', ACCEPT);
    assert.equal(res.status, 404);
    assert.equal(res.json<{ errors: { code: string }[] }>().errors[0]?.code, 'MANIFEST_UNKNOWN');
    await proxy.send('GET', '/v2/library/nothing/manifests/latest', ACCEPT);
    assert.equal(upstream.count({ method: 'GET' }), 2);
  });

  test('concurrent identical tag requests share one upstream GET', async () => {
    upstream.setManifest('library/busy', 'latest', manifestBody(OCI_MANIFEST, 'busy'));
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    upstream.override = async (req) => {
      if (req.method === 'GET' && req.url?.includes('/busy/')) await gate;
      return false;
    };
    const all = Promise.all(
      [1, 2, 3, 4].map(() => proxy.send('GET', '/v2/library/busy/manifests/latest', ACCEPT)),
    );
    await new Promise((r) => setTimeout(r, 100));
    release();
    const replies = await all;
    for (const r of replies) assert.equal(r.status, 200);
    assert.equal(upstream.count({ method: 'GET', path: '/v2/library/busy/manifests/latest' }), 1);
  });
});

describe('tag manifests with the manifest cache off (the default)', () => {
  let upstream: FakeRegistry;
  let proxy: Driven;

  before(async () => {
    upstream = await startFakeRegistry();
    proxy = await drive({ target: upstream.target });
  });
  after(async () => {
    await proxy.close();
    await upstream.close();
  });

  test('every tag request goes upstream, HEAD as HEAD', async () => {
    upstream.setManifest('library/app', 'latest', manifestBody(OCI_MANIFEST));
    const a = await proxy.send('GET', '/v2/library/app/manifests/latest', ACCEPT);
    const b = await proxy.send('GET', '/v2/library/app/manifests/latest', ACCEPT);
    const c = await proxy.send('HEAD', '/v2/library/app/manifests/latest', ACCEPT);
    assert.equal(a.status, 200);
    assert.deepEqual(b.body, a.body);
    assert.equal(c.status, 200);
    assert.equal(b.headers['x-docker-registry-proxy-cache-upstream-status'], 'BYPASS');
    assert.equal(b.headers['x-docker-registry-proxy-cache-type'], 'manifest-uncached');
    assert.deepEqual(
      upstream.log.map((r) => r.method),
      ['GET', 'GET', 'HEAD'],
    );
    // Upstream's own headers (rate-limit counters) reach the client.
    assert.equal(b.headers['ratelimit-remaining'], '99;w=21600');
  });
});

describe('the negotiated media-type class', () => {
  const modern = [
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    'application/vnd.docker.distribution.manifest.list.v2+json',
  ];
  const ctr = `${modern.join(', ')}, */*`;
  const skopeo = [...modern]
    .reverse()
    .concat([
      'application/vnd.docker.distribution.manifest.v1+prettyjws',
      'application/vnd.docker.distribution.manifest.v1+json',
    ])
    .join(', ');

  test('clients accepting the same manifest types share a class; others do not', () => {
    assert.equal(normaliseAccept(ctr), normaliseAccept(skopeo));
    assert.equal(
      normaliseAccept([OCI_INDEX, OCI_MANIFEST]),
      normaliseAccept(`${OCI_MANIFEST};q=0.5,${OCI_INDEX.toUpperCase()}`),
    );
    assert.notEqual(normaliseAccept(DOCKER_MANIFEST), normaliseAccept(ctr));
    assert.notEqual(normaliseAccept(OCI_INDEX), normaliseAccept(OCI_MANIFEST));
    assert.equal(normaliseAccept(undefined), 'other:');
    assert.notEqual(normaliseAccept('application/json'), normaliseAccept(undefined));
  });

  test('a tag cached for containerd is a hit for skopeo', async () => {
    const upstream = await startFakeRegistry();
    const proxy = await drive({ target: upstream.target, manifestCache: { enabled: true } });
    try {
      upstream.setManifest('library/shared', 'v1.0.0', manifestBody(OCI_INDEX, 'shared'));
      await proxy.send('GET', '/v2/library/shared/manifests/v1.0.0', { accept: ctr });
      const res = await proxy.send('GET', '/v2/library/shared/manifests/v1.0.0', { accept: skopeo });
      assert.equal(res.headers['x-docker-registry-proxy-cache-upstream-status'], 'HIT');
      assert.equal(upstream.log.length, 1);
    } finally {
      await proxy.close();
      await upstream.close();
    }
  });
});

describe('two registries', () => {
  test('the same repository and tag on two registries never collide', async () => {
    const one = await startFakeRegistry();
    const two = await startFakeRegistry();
    const cacheDir = (await import('node:fs')).mkdtempSync(`${(await import('node:os')).tmpdir()}/drp-two-`);
    const a = await drive({ target: one.target, cacheDir, manifestCache: { enabled: true } });
    try {
      const d1 = one.setManifest('library/app', 'latest', manifestBody(OCI_MANIFEST, 'one'));
      const d2 = two.setManifest('library/app', 'latest', manifestBody(OCI_MANIFEST, 'two'));
      const r1 = await a.send('GET', '/v2/library/app/manifests/latest', ACCEPT);
      await a.close();
      const b = await drive({ target: two.target, cacheDir, manifestCache: { enabled: true } });
      const r2 = await b.send('GET', '/v2/library/app/manifests/latest', ACCEPT);
      await b.close();
      assert.equal(r1.headers['docker-content-digest'], d1);
      assert.equal(r2.headers['docker-content-digest'], d2);
      assert.equal(two.count({ method: 'GET' }), 1);
    } finally {
      await one.close();
      await two.close();
      (await import('node:fs')).rmSync(cacheDir, { recursive: true, force: true });
    }
  });
});
