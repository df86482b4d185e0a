// Scenario 5 — faults, with drp-server as a separate process and skopeo as the client:
//  - kill -9 of the daemon in the middle of a cold 200 MB pull; restart on the same cache and CA;
//    the next pull gets the correct image and nothing corrupt was kept.
//  - the upstream dies in the middle of a blob: two clients pulling at once both get an error,
//    nothing is cached.
//  - the cache volume is full (a 30 MB tmpfs): pulls still succeed, uncached, and the cache
//    keeps working for what fits.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdir, stat, statfs, utimes } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import { createHarness, type Harness, type ImageInfo, RunError } from '../harness/index.ts';
import { type Drp, describe, settleLog, startDrp } from './lib/daemon.ts';

const MB = 1_000_000;
const blobsOf = (image: ImageInfo) => [image.config.digest, ...image.layers.map((l) => l.digest)];

async function du(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += await du(path);
    else if (entry.isFile()) total += (await stat(path)).size;
  }
  return total;
}

function pullVia(h: Harness, drp: Drp, named: string, repoRef: string, certDir = drp.certDir) {
  return h.pullImage(named, repoRef, { proxy: drp.url, certDir, timeoutMs: 300_000 }).catch((e: unknown) => {
    if (e instanceof RunError) e.message += `\n--- drp-server ---\n${drp.output()}`;
    throw e;
  });
}

async function pullFails(h: Harness, drp: Drp, named: string, repoRef: string, certDir = drp.certDir) {
  try {
    await h.pullImage(named, repoRef, { proxy: drp.url, certDir, timeoutMs: 300_000 });
  } catch (e) {
    if (e instanceof RunError) return e.result.stderr;
    throw e;
  }
  return assert.fail(`pulling ${repoRef} succeeded`);
}

const statuses = (drp: Drp, digest: string, since = 0) =>
  drp
    .requests({ method: 'GET', type: 'blob-by-digest', uri: new RegExp(`${digest}$`) }, since)
    .map((l) => l.upstream_cache_status);

test('kill -9 in the middle of a cold 200 MB pull, restart on the same cache: the correct image, nothing corrupt kept', async (t) => {
  const h = createHarness(t);
  const ca = await h.testCA();
  const registry = await h.startRegistry({ names: ['registry.test'] });
  const image = await h.createImage({ layers: [200 * MB, 1 * MB] });
  await registry.push(image, 'big/image:v1', { timeoutMs: 300_000 });
  const big = image.layers[0]!.digest;

  // The front relays the big layer itself and kills the daemon once half of it has gone through.
  let drp: Drp | undefined;
  let armed = true;
  let killedAt = 0;
  const front = await h.startFront({
    upstream: registry,
    names: ['registry.test'],
    async onRequest(req, res, forward) {
      if (!(armed && req.method === 'GET' && req.url?.endsWith(big))) return forward();
      const up: IncomingMessage = await forward.raw();
      res.writeHead(up.statusCode ?? 502, {
        'content-type': up.headers['content-type'] ?? 'application/octet-stream',
        'content-length': up.headers['content-length'] ?? '',
        'docker-content-digest': up.headers['docker-content-digest'] ?? '',
      });
      res.once('close', () => up.destroy());
      let sent = 0;
      up.on('data', (chunk: Buffer) => {
        sent += chunk.length;
        if (!res.write(chunk)) {
          up.pause();
          res.once('drain', () => up.resume());
        }
        if (armed && sent >= 100 * MB && drp) {
          armed = false;
          killedAt = sent;
          process.kill(drp.pid, 'SIGKILL');
        }
      });
      up.on('end', () => res.end());
    },
  });
  const named = `registry.test:${front.port}`;
  const cacheDir = h.tempDir('cache');
  const env = {
    REGISTRIES: named,
    UPSTREAM_MAPPINGS: 'registry.test=127.0.0.1',
    UPSTREAM_CA_FILE: ca.certPath,
    CACHE_DIR: cacheDir,
    CA_DIR: h.tempDir('ca'),
  };
  drp = await startDrp(h, { env });
  const first = drp;
  const failure = await pullFails(h, first, named, 'big/image:v1');
  assert.ok(killedAt >= 100 * MB, `killed after ${killedAt} bytes`);
  assert.equal(await first.daemon.exited, 'SIGKILL');
  assert.match(failure, /EOF|connection reset|connection refused|proxyconnect|broken pipe/i);

  // Restart on the same cache and CA; the client keeps its trust in the first run's CA.
  drp = await startDrp(h, { env });
  assert.equal(drp.caPem, first.caPem);
  front.counter.reset();
  const again = await pullVia(h, drp, named, 'big/image:v1', first.certDir);
  assert.equal(again.manifestDigest, image.manifestDigest);
  assert.deepEqual(
    again.layers,
    image.layers.map((l) => l.digest),
  );
  await front.counter.settle();
  await settleLog(drp);
  // The half-written layer was never an entry (a MISS). The restart took the dead run's fill
  // over (its lease names a dead pid): the bytes already spooled were re-hashed and only the
  // rest was asked for, with one Range request (the third pull below re-hashes every byte).
  assert.deepEqual(statuses(drp, big), ['MISS'], describe(drp.lines));
  const refetched = front.counter.requests({ method: 'GET', kind: 'blob', reference: big });
  assert.equal(refetched.length, 1, front.counter.summary());
  const resumedAt = Number(/^bytes=(\d+)-$/.exec(String(refetched[0]?.headers?.range))?.[1]);
  assert.ok(resumedAt > 0 && resumedAt <= killedAt, `resumed at ${resumedAt} (killed at ${killedAt})`);
  assert.deepEqual(
    refetched.map((r) => [r.status, r.bytes]),
    [[206, image.layers[0]!.size - resumedAt]],
  );

  // And what is cached now is right: a third pull is all HITs, every byte re-hashed by the test.
  front.counter.reset();
  const mark = drp.mark();
  const warm = await pullVia(h, drp, named, 'big/image:v1', first.certDir);
  assert.equal(warm.manifestDigest, image.manifestDigest);
  await front.counter.settle();
  await settleLog(drp);
  assert.equal(front.counter.count({ kind: 'blob' }), 0, front.counter.summary());
  for (const digest of blobsOf(image)) assert.deepEqual(statuses(drp, digest, mark), ['HIT'], digest);
  // The killed run's spool file is never an entry. A restart leaves it alone while it is younger
  // than the grace (it could be another live process's fill: the directory may be shared), then
  // it is garbage: aged past the grace, the next start collects it, and the cache holds the
  // image once, not 300 MB.
  const spoolDir = join(cacheDir, 'drp-spool');
  const leftovers = (await readdir(spoolDir)).filter((name) => name.endsWith('.part'));
  assert.ok(leftovers.length <= 1, `spool: ${leftovers.join(', ')}`);
  const old = new Date(Date.now() - 11 * 60_000);
  for (const name of leftovers) await utimes(join(spoolDir, name), old, old);
  await drp.stop();
  drp = await startDrp(h, { env });
  const used = await du(cacheDir);
  assert.ok(
    used < image.totalSize + 20 * MB,
    `cache dir holds ${used} bytes for a ${image.totalSize}-byte image`,
  );
});

test('the upstream dies in the middle of a blob: two clients pulling at once both get an error, nothing is cached', async (t) => {
  const h = createHarness(t);
  const ca = await h.testCA();
  const registry = await h.startRegistry({ names: ['registry.test'] });
  const image = await h.createImage({ layers: [4 * MB, 500_000] });
  await registry.push(image, 'flaky/app:v1');
  const victim = image.layers[0]!.digest;
  let dying = true;
  const front = await h.startFront({
    upstream: registry,
    names: ['registry.test'],
    onRequest(req, _res, forward) {
      // While "dying", every GET of the layer is cut off after 1 MB (retries included).
      if (dying && req.method === 'GET' && req.url?.endsWith(victim)) return forward({ truncateAfter: MB });
      return forward();
    },
  });
  const named = `registry.test:${front.port}`;
  const drp = await startDrp(h, {
    env: {
      REGISTRIES: named,
      UPSTREAM_MAPPINGS: 'registry.test=127.0.0.1',
      UPSTREAM_CA_FILE: ca.certPath,
      CACHE_DIR: h.tempDir('cache'),
      CA_DIR: h.tempDir('ca'),
    },
  });

  // Two clients at once (skopeo twice, sharing drp's one upstream fetch or not): both fail,
  // neither hangs nor gets a wrong layer.
  const failures = await Promise.all([
    pullFails(h, drp, named, 'flaky/app:v1'),
    pullFails(h, drp, named, 'flaky/app:v1'),
  ]);
  for (const failure of failures) assert.match(failure, /EOF|reset|closed|digest|unexpected/i);
  await front.counter.settle();
  await settleLog(drp);
  const cut = front.counter.requests({ method: 'GET', kind: 'blob', reference: victim });
  assert.ok(cut.length >= 1);
  for (const r of cut) assert.ok(r.bytes <= MB, `${r.bytes} bytes sent before the cut`);
  const failedLines = drp.requests({ method: 'GET', type: 'blob-by-digest', uri: new RegExp(`${victim}$`) });
  assert.ok(failedLines.length >= 2, describe(drp.lines));
  for (const line of failedLines) {
    assert.equal(line.upstream_cache_status, 'MISS', describe([line]));
    assert.ok(line.error !== undefined || line.aborted === true || line.status >= 500, describe([line]));
    assert.ok(line.bytes_sent < image.layers[0]!.size, describe([line]));
  }

  // The upstream is back: the layer is a MISS again (nothing was cached) and fetched whole.
  dying = false;
  front.counter.reset();
  const mark = drp.mark();
  const pulled = await pullVia(h, drp, named, 'flaky/app:v1');
  assert.equal(pulled.manifestDigest, image.manifestDigest);
  assert.deepEqual(
    pulled.layers,
    image.layers.map((l) => l.digest),
  );
  await front.counter.settle();
  await settleLog(drp);
  assert.deepEqual(statuses(drp, victim, mark), ['MISS'], describe(drp.lines.slice(mark)));
  assert.deepEqual(
    front.counter
      .requests({ method: 'GET', kind: 'blob', reference: victim })
      .map((r) => [r.status, r.bytes]),
    [[200, image.layers[0]!.size]],
  );
});

test('the cache volume is full (30 MB tmpfs): pulls still succeed, uncached, and the cache works again for what fits', async (t) => {
  const h = createHarness(t);
  const ca = await h.testCA();
  const registry = await h.startRegistry({ names: ['registry.test'] });
  const named = registry.namedHostPort;
  const [huge, small] = await Promise.all([
    h.createImage({ layers: [40 * MB, 6 * MB] }),
    h.createImage({ layers: [2 * MB] }),
  ]);
  await registry.push(huge, 'full/huge:v1');
  await registry.push(small, 'full/small:v1');

  const cacheDir = h.tempDir('tmpfs-cache');
  await h.run('mount', ['-t', 'tmpfs', '-o', 'size=30m', 'tmpfs', cacheDir]);
  // If the test process exits without cleanup (a crash), still do not leave the mount behind.
  const unmountOnExit = () => spawnSync('umount', ['-l', cacheDir]);
  process.once('exit', unmountOnExit);
  let drp: Drp | undefined;
  h.defer(async () => {
    // Before the harness stops processes: the daemon must let go of the mount first.
    await drp?.stop();
    await h.run('umount', [cacheDir], { check: false });
    await h.run('umount', ['-l', cacheDir], { check: false });
    process.off('exit', unmountOnExit);
  });
  drp = await startDrp(h, {
    env: {
      REGISTRIES: named,
      UPSTREAM_MAPPINGS: 'registry.test=127.0.0.1',
      UPSTREAM_CA_FILE: ca.certPath,
      CACHE_DIR: cacheDir,
      CA_DIR: h.tempDir('ca'),
    },
  });
  const volume = (await statfs(cacheDir)).blocks * (await statfs(cacheDir)).bsize;
  assert.ok(volume <= 32 * 1024 * 1024, `the cache volume is ${volume} bytes`);
  await registry.counter.settle();
  registry.counter.reset();

  // Twice the image that cannot fit: both pulls succeed and are correct.
  for (let i = 0; i < 2; i++) {
    const pulled = await pullVia(h, drp, named, 'full/huge:v1');
    assert.equal(pulled.manifestDigest, huge.manifestDigest);
    assert.deepEqual(
      pulled.layers,
      huge.layers.map((l) => l.digest),
    );
  }
  await registry.counter.settle();
  await settleLog(drp);
  assert.ok(drp.daemon.running(), 'the daemon is still running');
  // The 40 MB layer could not be cached: fetched upstream for each pull, never a HIT.
  const hugeLayer = huge.layers[0]!.digest;
  assert.equal(registry.counter.count({ method: 'GET', kind: 'blob', reference: hugeLayer }), 2);
  assert.deepEqual(statuses(drp, hugeLayer), ['MISS', 'MISS'], describe(drp.lines));
  // Failed writes were cleaned up: no partial files fill the volume.
  const free = (await statfs(cacheDir)).bavail * (await statfs(cacheDir)).bsize;
  assert.ok(free > 15 * MB, `${free} bytes free on the cache volume after the pulls`);

  // What fits is cached again: the second pull of a small image is all HITs.
  const mark = drp.mark();
  await pullVia(h, drp, named, 'full/small:v1');
  await registry.counter.settle();
  registry.counter.reset();
  const warm = await pullVia(h, drp, named, 'full/small:v1');
  assert.equal(warm.manifestDigest, small.manifestDigest);
  await registry.counter.settle();
  await settleLog(drp);
  assert.equal(registry.counter.count({ kind: 'blob' }), 0, registry.counter.summary());
  for (const digest of blobsOf(small)) assert.deepEqual(statuses(drp, digest, mark), ['MISS', 'HIT'], digest);
});
