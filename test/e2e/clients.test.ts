// Scenario 2 — the clients users actually run: skopeo, podman (vfs) and containerd's ctr (against
// a containerd daemon started here with its own root, state and socket), each going through
// drp with HTTPS_PROXY and trusting drp's CA from /ca.crt. Each pulls a multi-layer image and a
// multi-platform index; whichever client pulls second gets everything from the cache: the
// upstream registry sees no request at all (no GET, no HEAD; only the content-free /v2/ ping),
// and drp logs every blob and manifest request, GET or HEAD, as a HIT.
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { createHarness, type ImageInfo } from '../harness/index.ts';
import { startContainerd } from './lib/containerd.ts';
import { describe, settleLog, startDrp } from './lib/daemon.ts';
import { createPodman } from './lib/podman.ts';

const blobsOf = (image: ImageInfo) => [image.config.digest, ...image.layers.map((l) => l.digest)];

async function setup(t: TestContext) {
  const h = createHarness(t);
  const ca = await h.testCA();
  const registry = await h.startRegistry({ names: ['registry.test'] });
  const named = registry.namedHostPort; // registry.test:PORT — never a loopback address
  const drp = await startDrp(h, {
    env: {
      REGISTRIES: named,
      UPSTREAM_MAPPINGS: 'registry.test=127.0.0.1',
      UPSTREAM_CA_FILE: ca.certPath,
      ENABLE_MANIFEST_CACHE: 'true',
      CACHE_DIR: h.tempDir('cache'),
      CA_DIR: h.tempDir('ca'),
    },
  });
  const [podman, containerd] = await Promise.all([createPodman(h), startContainerd(h)]);
  // Everything but the /v2/ ping (which drp forwards; it carries no content).
  const upstreamRequests = () => registry.counter.requests().filter((r) => r.kind !== 'ping');
  return { h, registry, named, drp, podman, containerd, upstreamRequests };
}

test('a multi-layer image: podman pulls it cold, then skopeo and ctr get everything from the cache', async (t) => {
  const { h, registry, named, drp, podman, containerd, upstreamRequests } = await setup(t);
  const image = await h.createImage({ layers: [400_000, 1_500_000, 700_000] });
  await registry.push(image, 'team/app:v1');
  const appRef = `${named}/team/app:v1`;
  await registry.counter.settle();
  registry.counter.reset();

  let mark = drp.mark();
  await podman.pull(appRef, { proxy: drp.url, certDir: drp.certDir });
  const pulledByPodman = await podman.inspect(appRef);
  assert.equal(pulledByPodman.digest, image.manifestDigest);
  assert.equal(`sha256:${pulledByPodman.id}`, image.config.digest);
  await registry.counter.settle();
  await settleLog(drp);
  // Cold: every blob came from upstream exactly once, and drp says so.
  for (const digest of blobsOf(image)) {
    assert.equal(
      registry.counter.count({ method: 'GET', kind: 'blob', reference: digest }),
      1,
      `${digest}\n${registry.counter.summary()}`,
    );
  }
  const coldBlobs = drp.requests({ type: 'blob-by-digest', method: 'GET' }, mark);
  assert.deepEqual(
    coldBlobs.map((l) => l.upstream_cache_status),
    blobsOf(image).map(() => 'MISS'),
    describe(coldBlobs),
  );

  registry.counter.reset();
  mark = drp.mark();
  const pulledBySkopeo = await h.pullImage(named, 'team/app:v1', { proxy: drp.url, certDir: drp.certDir });
  assert.equal(pulledBySkopeo.manifestDigest, image.manifestDigest);
  assert.deepEqual(
    pulledBySkopeo.layers,
    image.layers.map((l) => l.digest),
  );
  await containerd.pull(appRef, { proxy: drp.url, caFile: drp.caFile });
  assert.equal((await containerd.image(appRef)).digest, image.manifestDigest);
  const content = await containerd.content();
  for (const digest of [image.manifestDigest, ...blobsOf(image)]) assert.ok(content.has(digest), digest);
  await registry.counter.settle();
  await settleLog(drp);
  assert.deepEqual(upstreamRequests(), [], registry.counter.summary());
  const warmApp = drp.requests({}, mark).filter((l) => l.request_type !== 'ping');
  const warmAppContent = warmApp.filter((l) => /by-digest$/.test(l.request_type));
  // skopeo: config + 3 layers; ctr: the manifest by digest, config + 3 layers.
  assert.ok(warmAppContent.length >= 9, describe(warmApp));
  for (const line of warmApp) assert.equal(line.upstream_cache_status, 'HIT', describe([line]));
});

test('a multi-platform index: ctr pulls every platform cold, then podman and skopeo get everything from the cache', async (t) => {
  const { h, registry, named, drp, podman, containerd, upstreamRequests } = await setup(t);
  const index = await h.createIndex(
    [
      { os: 'linux', architecture: 'amd64' },
      { os: 'linux', architecture: 'arm64' },
    ],
    [900_000, 300_000],
  );
  await registry.push(index, 'team/multi:2.0.1');
  const multiRef = `${named}/team/multi:2.0.1`;
  await registry.counter.settle();
  registry.counter.reset();

  let mark = drp.mark();
  await containerd.pull(multiRef, { proxy: drp.url, caFile: drp.caFile, allPlatforms: true });
  const pulledByCtr = await containerd.image(multiRef);
  assert.equal(pulledByCtr.digest, index.manifestDigest);
  assert.equal(pulledByCtr.mediaType, index.mediaType);
  const indexContent = await containerd.content();
  for (const child of index.children) {
    for (const digest of [child.manifestDigest, ...blobsOf(child)])
      assert.ok(indexContent.has(digest), digest);
  }
  await registry.counter.settle();
  await settleLog(drp);
  for (const child of index.children) {
    for (const digest of blobsOf(child)) {
      assert.equal(registry.counter.count({ method: 'GET', kind: 'blob', reference: digest }), 1, digest);
    }
  }
  assert.ok(
    drp.requests({ type: 'blob-by-digest', cache: 'MISS' }, mark).length >= 6,
    describe(drp.lines.slice(mark)),
  );

  registry.counter.reset();
  mark = drp.mark();
  await podman.pull(multiRef, { proxy: drp.url, certDir: drp.certDir });
  const amd64 = index.children.find((c) => c.platform.architecture === 'amd64')!;
  const multiByPodman = await podman.inspect(multiRef);
  assert.equal(`sha256:${multiByPodman.id}`, amd64.config.digest);
  assert.ok(
    multiByPodman.repoDigests.some((d) => d.endsWith(`@${index.manifestDigest}`)),
    JSON.stringify(multiByPodman),
  );
  const multiBySkopeo = await h.pullImage(named, 'team/multi:2.0.1', {
    proxy: drp.url,
    certDir: drp.certDir,
    all: true,
  });
  assert.equal(multiBySkopeo.manifestDigest, index.manifestDigest);
  assert.deepEqual(
    multiBySkopeo.children.map((c) => [c.manifestDigest, c.configDigest, c.layers]),
    index.children.map((c) => [c.manifestDigest, c.config.digest, c.layers.map((l) => l.digest)]),
  );
  await registry.counter.settle();
  await settleLog(drp);
  assert.deepEqual(upstreamRequests(), [], registry.counter.summary());
  const warmMulti = drp.requests({}, mark).filter((l) => l.request_type !== 'ping');
  // podman: amd64 manifest, config, 2 layers; skopeo --all: 2 manifests, 2 configs, 4 layers.
  assert.ok(warmMulti.filter((l) => /by-digest$/.test(l.request_type)).length >= 12, describe(warmMulti));
  for (const line of warmMulti) assert.equal(line.upstream_cache_status, 'HIT', describe([line]));
});
