// Scenario 3 — Docker Hub's behaviour. A Docker Hub look-alike (lib/dockerhub.ts: token realm on
// auth.docker.io, 307s of blobs to production.cloudflare.docker.com with signed expiring URLs,
// ratelimit headers, 429 TOOMANYREQUESTS after N manifest GETs) in front of a real distribution
// registry, reached by drp under the real names through UPSTREAM_MAPPINGS. Clients pull
// `docker.io/...` through HTTPS_PROXY exactly as they would pull from Docker Hub.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createHarness, type Harness, type ImageInfo, RunError } from '../harness/index.ts';
import { type Drp, describe, settleLog, startDrp } from './lib/daemon.ts';
import { HUB_CDN, HUB_REGISTRY, startDockerHub } from './lib/dockerhub.ts';

const N = 4; // manifest GETs per account before Docker Hub answers 429

async function pull(h: Harness, drp: Drp, repoRef: string) {
  return h.pullImage('docker.io', repoRef, { proxy: drp.url, certDir: drp.certDir }).catch((e: unknown) => {
    if (e instanceof RunError) e.message += `\n--- drp-server ---\n${drp.output()}`;
    throw e;
  });
}

async function pullError(h: Harness, drp: Drp, repoRef: string): Promise<string> {
  try {
    await pull(h, drp, repoRef);
  } catch (e) {
    if (e instanceof RunError) return e.result.stderr;
    throw e;
  }
  return assert.fail(`pulling ${repoRef} through drp succeeded`);
}

function assertSame(pulled: { manifestDigest: string; layers: string[] }, image: ImageInfo) {
  assert.equal(pulled.manifestDigest, image.manifestDigest);
  assert.deepEqual(
    pulled.layers,
    image.layers.map((l) => l.digest),
  );
}

test('rate limit: without the manifest cache pull N+1 is refused upstream (served stale); with ENABLE_MANIFEST_CACHE=true 3×N pulls all succeed', async (t) => {
  const h = createHarness(t);
  const ca = await h.testCA();
  const upstream = await h.startRegistry({ names: [HUB_REGISTRY] });
  const hub = await startDockerHub(h, upstream, { pullLimit: N });
  const image = await h.createImage({ layers: [600_000, 2_000_000], format: 'docker' });
  await upstream.push(image, 'library/alpine:latest');
  const env = {
    UPSTREAM_MAPPINGS: hub.mappings,
    UPSTREAM_CA_FILE: ca.certPath,
    CA_DIR: h.tempDir('ca'),
  };

  // The fake's CDN really checks its signed URLs (so a proxy that replays or leaks fails).
  const blob = image.layers[0]!.digest;
  const path = (url: string) => url.replace(`https://${HUB_CDN}`, '');
  assert.equal((await hub.cdn.request(path(hub.signedBlobUrl('library/alpine', blob)))).status, 200);
  assert.equal(
    (await hub.cdn.request(path(hub.signedBlobUrl('library/alpine', blob, Date.now() - 1000)))).status,
    403,
  );
  assert.equal(
    (await hub.cdn.request(`${path(hub.signedBlobUrl('library/alpine', blob))}x`)).status,
    403,
    'a tampered signature',
  );
  const withToken = await hub.cdn.request(path(hub.signedBlobUrl('library/alpine', blob)), {
    headers: { authorization: 'Bearer leaked' },
  });
  assert.equal(withToken.status, 400);
  hub.cdn.counter.reset();

  // 1. Manifest cache off (the default): every pull is a manifest GET upstream. Pull N+1 is
  //    refused by Docker Hub (429 TOOMANYREQUESTS); drp answers it with the manifest it fetched
  //    before (STALE). (A tag drp has never seen gets the 429 as is, but skopeo retries 429s
  //    with back-off for ~20 s, too slow for this suite; the core's tests cover that.)
  const plain = await startDrp(h, { env: { ...env, CACHE_DIR: h.tempDir('cache-plain') } });
  for (let i = 1; i <= N; i++) assertSame(await pull(h, plain, 'library/alpine:latest'), image);
  assert.equal(hub.pulls(), N);
  assert.equal(hub.refused(), 0);
  assertSame(await pull(h, plain, 'library/alpine:latest'), image);
  assert.equal(hub.refused(), 1);
  await settleLog(plain);
  const tagLines = (p: Drp) => p.requests({ method: 'GET', uri: /\/manifests\/latest$/ });
  assert.deepEqual(
    tagLines(plain).map((l) => [l.upstream_cache_status, l.status]),
    [...Array.from({ length: N }, () => ['BYPASS', 200]), ['STALE', 200]],
    describe(tagLines(plain)),
  );
  // Blobs went through the CDN redirect once each, then came from drp's cache.
  for (const digest of [image.config.digest, ...image.layers.map((l) => l.digest)]) {
    const fetched = hub.cdn.counter
      .requests({ method: 'GET' })
      .filter((r) => r.path.includes(digest.slice(7)));
    assert.equal(fetched.length, 1, `${digest}\n${hub.cdn.counter.summary()}`);
  }
  for (const r of hub.cdn.counter.requests()) assert.equal(r.headers?.authorization, undefined);
  await plain.stop();

  // 2. A new window, a daemon with the manifest cache: 3×N pulls, at most one counted pull.
  hub.resetLimits();
  hub.registry.counter.reset();
  hub.cdn.counter.reset();
  const cached = await startDrp(h, {
    env: { ...env, CACHE_DIR: h.tempDir('cache-manifests'), ENABLE_MANIFEST_CACHE: 'true' },
  });
  for (let i = 1; i <= 3 * N; i++) {
    const pulled = await pull(h, cached, 'library/alpine:latest').catch((e: unknown) => {
      throw new Error(`pull ${i} of ${3 * N} failed: ${String(e)}\n${describe(cached.lines)}`);
    });
    assertSame(pulled, image);
  }
  await settleLog(cached);
  await hub.registry.counter.settle();
  assert.equal(hub.refused(), 1, 'no 429 since the first daemon');
  assert.equal(
    hub.registry.counter.count({ kind: 'manifest', method: 'GET' }),
    1,
    hub.registry.counter.summary({ kind: 'manifest' }),
  );
  assert.equal(hub.pulls(), 1);
  assert.deepEqual(
    tagLines(cached).map((l) => [l.upstream_cache_status, l.status]),
    [['MISS', 200], ...Array.from({ length: 3 * N - 1 }, () => ['HIT', 200])],
    describe(tagLines(cached)),
  );
  // The client only ever talked to registry-1.docker.io and auth.docker.io; drp followed the
  // redirects to the CDN itself, once per blob.
  assert.equal(cached.requests({ host: HUB_CDN }).length, 0);
  assert.ok(cached.requests({ host: HUB_REGISTRY }).length > 3 * N);
  assert.equal(hub.cdn.counter.count({ method: 'GET' }), 3, hub.cdn.counter.summary());
  const blobLines = cached.requests({ type: 'blob-by-digest', method: 'GET' });
  assert.equal(blobLines.filter((l) => l.upstream_cache_status === 'MISS').length, 3, describe(blobLines));
});

test('AUTH_REGISTRIES with credentials for auth.docker.io: a client with none pulls a private repository', async (t) => {
  const h = createHarness(t);
  const ca = await h.testCA();
  const upstream = await h.startRegistry({ names: [HUB_REGISTRY] });
  const password = 'hunter2-Secret';
  const hub = await startDockerHub(h, upstream, {
    privateRepos: ['acme/private'],
    users: { alice: password },
  });
  const [secret, open] = await Promise.all([
    h.createImage({ layers: [800_000, 300_000] }),
    h.createImage({ layers: [200_000] }),
  ]);
  await upstream.push(secret, 'acme/private:1.0');
  await upstream.push(open, 'library/busybox:1.36');
  const env = { UPSTREAM_MAPPINGS: hub.mappings, UPSTREAM_CA_FILE: ca.certPath, CA_DIR: h.tempDir('ca') };

  // Control: without configured credentials the private repository is refused.
  const anonymous = await startDrp(h, { env: { ...env, CACHE_DIR: h.tempDir('cache-anon') } });
  const refused = await pullError(h, anonymous, 'acme/private:1.0');
  assert.match(refused, /unauthorized|authentication required|denied/i);
  assert.ok(
    hub.tokens.some(
      (tok) => tok.subject === 'anonymous' && tok.requested.includes('repository:acme/private:pull'),
    ),
  );
  assert.ok(!hub.tokens.some((tok) => tok.granted.includes('repository:acme/private:pull')));
  await anonymous.stop();

  const drp = await startDrp(h, {
    env: { ...env, CACHE_DIR: h.tempDir('cache'), AUTH_REGISTRIES: `auth.docker.io:alice:${password}` },
  });
  hub.auth.counter.reset();
  const tokensBefore = hub.tokens.length;
  // The client has no credentials at all (skopeo --src-no-creds).
  assertSame(await pull(h, drp, 'acme/private:1.0'), secret);
  assertSame(await pull(h, drp, 'library/busybox:1.36'), open);
  const issued = hub.tokens.slice(tokensBefore);
  assert.ok(
    issued.some((tok) => tok.subject === 'alice' && tok.granted.includes('repository:acme/private:pull')),
    JSON.stringify(issued),
  );
  // drp added the account's Basic credentials to the token requests it intercepted.
  const basic = `Basic ${Buffer.from(`alice:${password}`).toString('base64')}`;
  const tokenRequests = hub.auth.counter.requests({ path: '/token' });
  assert.ok(tokenRequests.length >= 1);
  for (const r of tokenRequests) assert.equal(r.headers?.authorization, basic);
  await settleLog(drp);
  assert.ok(drp.requests({ host: 'auth.docker.io' }).length >= 1, describe(drp.lines));
  assert.ok(drp.requests({ host: HUB_REGISTRY, type: 'blob-by-digest', status: 200 }).length >= 3);
  // The secret never reaches the log.
  for (const line of drp.lines) assert.doesNotMatch(JSON.stringify(line), /hunter2|Basic /);
});
