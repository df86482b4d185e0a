// Scenario 1 — the original's own CI check, done properly. The original's CI runs the proxy,
// installs /ca.crt as trusted, restarts the proxy on the same CA volume, pulls alpine,
// registry.k8s.io/pause and a ghcr.io image, prunes, and pulls again — and never checks that
// anything was cached. Here the same steps run against drp-server started as users start it,
// with the real registry names (Docker Hub through the look-alike in lib/dockerhub.ts,
// registry.k8s.io and ghcr.io as real distribution registries), the default REGISTRIES, and
// podman trusting drp's CA system-wide (SSL_CERT_FILE, no per-registry flags) — and it asserts
// MISS then HIT and counts every upstream request.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { createHarness, type ImageInfo, type Registry } from '../harness/index.ts';
import { describe, httpGet, settleLog, startDrp } from './lib/daemon.ts';
import { HUB_REGISTRY, startDockerHub } from './lib/dockerhub.ts';
import { createPodman } from './lib/podman.ts';

const blobsOf = (image: ImageInfo) => [image.config.digest, ...image.layers.map((l) => l.digest)];

test("the original's CI check: trust /ca.crt, restart on the same CA, pull cold (MISS), prune, pull warm (HIT), counting upstream requests", async (t) => {
  const h = createHarness(t);
  const ca = await h.testCA();
  const [hubRegistry, k8s, ghcr] = await Promise.all([
    h.startRegistry({ names: [HUB_REGISTRY] }),
    h.startRegistry({ names: ['registry.k8s.io'] }),
    h.startRegistry({ names: ['ghcr.io'] }),
  ]);
  const hub = await startDockerHub(h, hubRegistry);
  const [alpine, pause, tool] = await Promise.all([
    h.createImage({ layers: [3_000_000], format: 'docker' }),
    h.createImage({ layers: [300_000] }),
    h.createImage({ layers: [1_000_000, 2_000_000] }),
  ]);
  await Promise.all([
    hubRegistry.push(alpine, 'library/alpine:3.19'),
    k8s.push(pause, 'pause:3.9'),
    ghcr.push(tool, 'rpardini/tool:1.0'),
  ]);
  const images: { ref: string; image: ImageInfo; upstream: Registry }[] = [
    { ref: 'docker.io/library/alpine:3.19', image: alpine, upstream: hubRegistry },
    { ref: 'registry.k8s.io/pause:3.9', image: pause, upstream: k8s },
    { ref: 'ghcr.io/rpardini/tool:1.0', image: tool, upstream: ghcr },
  ];

  // The default REGISTRIES (registry.k8s.io gcr.io quay.io ghcr.io, plus Docker Hub); only the
  // addresses are mapped to this machine.
  const caDir = h.tempDir('ca-volume');
  const env = {
    CA_DIR: caDir,
    CACHE_DIR: h.tempDir('cache-volume'),
    UPSTREAM_CA_FILE: ca.certPath,
    UPSTREAM_MAPPINGS: `${hub.mappings} registry.k8s.io=127.0.0.1:${k8s.port} ghcr.io=127.0.0.1:${ghcr.port}`,
  };

  // 1. First start: fetch /ca.crt and trust it system-wide for Go clients.
  const first = await startDrp(h, { env });
  assert.equal(first.startup.ca_origin, 'created');
  const trusted = join(h.tempDir('trust-store'), 'ca-certificates.crt');
  await writeFile(trusted, (await httpGet(`${first.url}/ca.crt`)).body);
  assert.equal(await first.stop(), 0);

  // 2. Restart on the same CA directory: same CA, and the client keeps trusting it.
  const drp = await startDrp(h, { env });
  assert.equal(drp.startup.ca_origin, 'loaded');
  assert.equal(drp.caPem, await readFile(trusted, 'utf8'));
  assert.equal(drp.caPem, await readFile(join(caDir, 'ca.crt'), 'utf8'));

  const podman = await createPodman(h);
  const pullAll = async () => {
    for (const { ref, image } of images) {
      await podman
        .pull(ref, { proxy: drp.url, env: { SSL_CERT_FILE: trusted, SSL_CERT_DIR: undefined } })
        .catch((e: unknown) => {
          throw new Error(`${String(e)}\n--- drp-server ---\n${drp.output()}`);
        });
      const local = await podman.inspect(ref);
      assert.equal(local.digest, image.manifestDigest, ref);
      assert.equal(`sha256:${local.id}`, image.config.digest, ref);
    }
  };
  const resetCounters = async () => {
    await Promise.all([...images.map((i) => i.upstream.counter.settle()), hub.cdn.counter.settle()]);
    for (const { upstream } of images) upstream.counter.reset();
    hub.registry.counter.reset();
    hub.cdn.counter.reset();
  };
  const settle = async () => {
    await Promise.all([...images.map((i) => i.upstream.counter.settle()), hub.cdn.counter.settle()]);
    await settleLog(drp);
  };

  // 3. Cold: every blob is a MISS and is fetched upstream exactly once (Docker Hub's through
  //    the CDN it redirects to).
  await resetCounters();
  const coldMark = drp.mark();
  await pullAll();
  await settle();
  for (const { ref, image, upstream } of images) {
    for (const digest of blobsOf(image)) {
      assert.equal(
        upstream.counter.count({ method: 'GET', kind: 'blob', reference: digest }),
        1,
        `${ref} ${digest}\n${upstream.counter.summary()}`,
      );
      const lines = drp.requests(
        { method: 'GET', type: 'blob-by-digest', uri: new RegExp(`${digest}$`) },
        coldMark,
      );
      assert.deepEqual(
        lines.map((l) => l.upstream_cache_status),
        ['MISS'],
        describe(lines),
      );
    }
  }
  assert.equal(hub.cdn.counter.count({ method: 'GET' }), blobsOf(alpine).length, hub.cdn.counter.summary());

  // 4. Prune: nothing is left on the client.
  await podman.prune();
  assert.equal(await podman.count(), 0);

  // 5. Warm: the same pulls; every blob is a HIT and no blob is requested upstream. Without
  //    ENABLE_MANIFEST_CACHE (the default) each tag is still asked upstream once per pull.
  await resetCounters();
  const warmMark = drp.mark();
  await pullAll();
  await settle();
  for (const { ref, image, upstream } of images) {
    assert.equal(upstream.counter.count({ kind: 'blob' }), 0, `${ref}\n${upstream.counter.summary()}`);
    assert.equal(
      upstream.counter.count({ kind: 'manifest', method: 'GET' }),
      1,
      `${ref}\n${upstream.counter.summary()}`,
    );
    for (const digest of blobsOf(image)) {
      const lines = drp.requests(
        { method: 'GET', type: 'blob-by-digest', uri: new RegExp(`${digest}$`) },
        warmMark,
      );
      assert.deepEqual(
        lines.map((l) => l.upstream_cache_status),
        ['HIT'],
        describe(lines),
      );
    }
  }
  assert.equal(hub.cdn.counter.count(), 0, hub.cdn.counter.summary());
  assert.equal(hub.registry.counter.count({ kind: 'blob' }), 0, hub.registry.counter.summary());
  const warmBlobs = drp.requests({ type: 'blob-by-digest' }, warmMark);
  assert.equal(
    warmBlobs.length,
    images.reduce((n, i) => n + blobsOf(i.image).length, 0),
    describe(warmBlobs),
  );
});
