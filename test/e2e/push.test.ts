// Scenario 4 — push through the proxy. podman pushes an image through drp (ALLOW_PUSH=true) to a
// registry that requires credentials; containerd's ctr then pulls it back through drp, and
// skopeo reads it straight from the registry: same manifest, and the layers' uncompressed
// contents (diff IDs) are the ones podman started from. With ALLOW_PUSH unset (the default) the
// same push is refused and nothing reaches the registry.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { createHarness, RunError, skopeo } from '../harness/index.ts';
import { startContainerd } from './lib/containerd.ts';
import { describe, settleLog, startDrp } from './lib/daemon.ts';
import { createPodman } from './lib/podman.ts';

test('podman pushes through drp with ALLOW_PUSH=true; ctr pulls the image back through drp', async (t) => {
  const h = createHarness(t);
  const ca = await h.testCA();
  const creds = { username: 'pusher', password: 'push-s3cret' };
  const registry = await h.startRegistry({ names: ['registry.test'], auth: creds });
  const named = registry.namedHostPort;
  const image = await h.createImage({ layers: [2_000_000, 5_000_000, 300_000] });
  const env = {
    REGISTRIES: named,
    UPSTREAM_MAPPINGS: 'registry.test=127.0.0.1',
    UPSTREAM_CA_FILE: ca.certPath,
    CA_DIR: h.tempDir('ca'),
  };
  const [podman, containerd] = await Promise.all([createPodman(h), startContainerd(h)]);
  // The image in podman's local storage, as if built there.
  await skopeo(['copy', '--quiet', image.source, podman.storageRef('localhost/team/app:v1')]);
  const { id } = await podman.inspect('localhost/team/app:v1');
  assert.equal(`sha256:${id}`, image.config.digest);
  const dest = `${named}/team/pushed:v1`;
  const userPass = `${creds.username}:${creds.password}`;

  // Control: the default (ALLOW_PUSH=false) refuses the push; the registry sees no upload.
  const readOnly = await startDrp(h, { env: { ...env, CACHE_DIR: h.tempDir('cache-ro') } });
  await registry.counter.settle();
  registry.counter.reset();
  const refused = await podman
    .push(id, dest, { proxy: readOnly.url, certDir: readOnly.certDir, creds: userPass })
    .then(
      () => assert.fail('the push went through with ALLOW_PUSH=false'),
      (e: unknown) => (e instanceof RunError ? e.result.stderr : assert.fail(String(e))),
    );
  assert.match(refused, /405|method not allowed|unsupported|denied/i);
  await registry.counter.settle();
  assert.equal(registry.counter.count({ kind: 'upload' }), 0, registry.counter.summary());
  assert.equal(registry.counter.count({ method: 'PUT' }), 0, registry.counter.summary());
  await settleLog(readOnly);
  assert.ok(readOnly.requests({ method: 'POST', status: 405 }).length >= 1, describe(readOnly.lines));
  await readOnly.stop();

  // ALLOW_PUSH=true: the push goes through, uploads streamed to the registry.
  const drp = await startDrp(h, { env: { ...env, CACHE_DIR: h.tempDir('cache'), ALLOW_PUSH: 'true' } });
  const pushed = await podman
    .push(id, dest, { proxy: drp.url, certDir: drp.certDir, creds: userPass })
    .catch((e: unknown) => {
      throw new Error(`${String(e)}\n--- drp-server ---\n${drp.output()}`);
    });
  assert.match(pushed, /^sha256:[0-9a-f]{64}$/);
  await registry.counter.settle();
  await settleLog(drp);
  assert.equal(
    registry.counter.count({ method: 'PUT', kind: 'manifest', status: 201 }),
    1,
    registry.counter.summary(),
  );
  assert.ok(registry.counter.count({ method: 'PUT', kind: 'upload', status: 201 }) >= 1);
  const uploads = drp.requests({ type: 'upload' });
  assert.ok(uploads.length >= 2, describe(drp.lines));
  for (const line of uploads) assert.ok(line.status < 400, describe([line]));
  assert.equal(drp.requests({ method: 'PUT', uri: '/v2/team/pushed/manifests/v1', status: 201 }).length, 1);

  // The registry itself has the image (read directly, not through drp)...
  const direct = await h.pullImage(registry, 'team/pushed:v1', { creds });
  assert.equal(direct.manifestDigest, pushed);
  const config = JSON.parse(await readFile(join(direct.dir, direct.configDigest!.slice(7)), 'utf8')) as {
    rootfs: { diff_ids: string[] };
  };
  assert.deepEqual(
    config.rootfs.diff_ids,
    image.layers.map((l) => l.diffId),
  );

  // ...and another client pulls it through drp.
  await containerd.pull(dest, { proxy: drp.url, caFile: drp.caFile, user: userPass });
  const pulled = await containerd.image(dest);
  assert.equal(pulled.digest, pushed);
  const content = await containerd.content();
  for (const digest of [pushed, direct.configDigest!, ...direct.layers])
    assert.ok(content.has(digest), digest);
  await settleLog(drp);
  assert.ok(
    drp.requests({ method: 'GET', type: 'blob-by-digest', status: 200 }).length >= 4,
    describe(drp.lines),
  );
});
