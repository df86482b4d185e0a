// WORKERS=2: drp-server as users start it, two node:cluster workers on one port, real curl
// clients through HTTPS_PROXY against a real registry (behind a harness front that can stall).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { createHarness } from '../harness/index.ts';
import { BIN, get, type LogLine, ROOT, startDaemon } from '../integration/daemon-lib.ts';
import { alive, curlVia, metricSum, until } from './lib.ts';

test('WORKERS=2: worker ids in the log, /metrics sums both, a killed worker comes back, SIGTERM drains every worker and leaves no process', async (t) => {
  const h = createHarness(t);
  const ca = await h.testCA();
  const registry = await h.startRegistry({ names: ['registry.test'] });
  const image = await h.createImage({ layers: [300_000, 3_000_000] });
  await registry.push(image, 'team/app:v1');
  const big = image.layers[1]!;
  let stall = false;
  let stalled: () => void = () => {};
  const stalling = new Promise<void>((resolve) => {
    stalled = resolve;
  });
  const front = await h.startFront({
    upstream: registry,
    names: ['registry.test'],
    onRequest: (req, _res, forward) => {
      if (!stall || !req.url?.includes(big.digest)) return forward();
      stalled();
      return forward({ stallAfter: { bytes: 400_000, ms: 3000 } });
    },
  });
  const drp = await startDaemon(h, {
    WORKERS: '2',
    REGISTRIES: front.namedHostPort,
    UPSTREAM_MAPPINGS: 'registry.test=127.0.0.1',
    UPSTREAM_CA_FILE: ca.certPath,
    CACHE_DIR: h.tempDir('cache'),
    CA_DIR: h.tempDir('ca'),
    SHUTDOWN_TIMEOUT: '20s',
    // The registry itself, not intercepted: reached through a raw tunnel.
    TUNNEL_PORTS: String(registry.port),
  });
  const startup = drp.lines.find((l) => l.type === 'startup')!;
  assert.equal(startup.workers, 2);
  const firstPids = startup.worker_pids as number[];
  assert.equal(firstPids.length, 2);
  assert.ok(firstPids.every(alive));
  const caFile = join(drp.certDir, 'ca.crt');
  const blobUrl = (digest: string) => `https://${front.namedHostPort}/v2/team/app/blobs/${digest}`;
  const fetchBlob = (digest: string) => curlVia(h, drp.url, caFile, blobUrl(digest));

  // Connections are spread over both workers (the cluster's round robin): each line names its worker.
  for (let i = 0; i < 8; i++) {
    const got = await fetchBlob(image.config.digest);
    assert.equal(got.status, 200);
    assert.equal(got.digest, image.config.digest);
  }
  // A line is written when the response has finished, maybe after curl has exited.
  await until('8 request lines', () => drp.requests({ request_type: 'blob-by-digest' }).length >= 8);
  const served = drp.requests({ request_type: 'blob-by-digest' });
  assert.equal(served.length, 8);
  const workersSeen = new Set(served.map((l) => l.worker));
  assert.deepEqual([...workersSeen].sort(), [1, 2], JSON.stringify(served));

  // Tunnel lines name their worker too.
  const tunnelled = await curlVia(h, drp.url, ca.certPath, `https://${registry.namedHostPort}/v2/`);
  assert.equal(tunnelled.status, 200);
  await until('the tunnel line', () => drp.lines.some((l) => l.type === 'tunnel'));
  const tunnel = drp.lines.find((l) => l.type === 'tunnel')!;
  assert.ok(tunnel.worker === 1 || tunnel.worker === 2, JSON.stringify(tunnel));

  // /metrics, scraped through either worker, counts the requests of both.
  for (let i = 0; i < 2; i++) {
    const metrics = await get(`${drp.url}/metrics`);
    assert.equal(metrics.status, 200);
    const lines = drp.requests();
    const perWorker = [1, 2].map((w) => lines.filter((l) => l.worker === w).length);
    assert.ok(
      perWorker.every((n) => n > 0),
      JSON.stringify(perWorker),
    );
    assert.equal(metricSum(metrics.body, 'drp_requests_total'), perWorker[0]! + perWorker[1]!);
    assert.equal(metricSum(metrics.body, 'drp_workers', /state="answering"/), 2);
    assert.equal(metricSum(metrics.body, 'drp_workers', /state="up"/), 2);
  }
  const health = JSON.parse((await get(`${drp.url}/healthz`)).body) as Record<string, unknown>;
  assert.deepEqual(health, { status: 'ok', workers: 2, workers_up: 2 });

  // kill -9 of a worker: the primary restarts it (same slot) and both serve again.
  process.kill(firstPids[0]!, 'SIGKILL');
  const restarted = () =>
    drp.lines.find((l: LogLine) => l.type === 'worker' && /restarted/.test(String(l.msg)));
  await until('the killed worker to be restarted', () => restarted() !== undefined);
  const newPid = restarted()!.pid as number;
  assert.ok(!firstPids.includes(newPid));
  await until('both workers up again', async () => {
    const body = JSON.parse((await get(`${drp.url}/healthz`)).body) as { workers_up: number };
    return body.workers_up === 2;
  });
  const metrics = await get(`${drp.url}/metrics`);
  assert.equal(metricSum(metrics.body, 'drp_worker_restarts_total'), 1);
  const before = drp.requests().length;
  for (let i = 0; i < 4; i++) assert.equal((await fetchBlob(image.config.digest)).status, 200);
  await until('4 more request lines', () => drp.requests().length >= before + 4);
  assert.deepEqual(
    [
      ...new Set(
        drp
          .requests()
          .slice(before)
          .map((l) => l.worker),
      ),
    ].sort(),
    [1, 2],
    'both slots serve after the restart',
  );

  // SIGTERM to the primary while a cold blob is mid-transfer (the upstream stalls 3 s): the
  // transfer completes, the primary exits 0, and no worker is left.
  stall = true;
  const pending = fetchBlob(big.digest);
  await stalling;
  const pids = [firstPids[1]!, newPid];
  drp.daemon.child.kill('SIGTERM');
  const got = await pending;
  assert.equal(got.status, 200);
  assert.equal(got.digest, big.digest);
  assert.equal(await drp.daemon.exited, 0);
  assert.ok(
    pids.every((pid) => !alive(pid)),
    `workers left: ${pids.filter(alive).join(' ')}`,
  );
  assert.ok(
    drp.lines.some(
      (l) => l.type === 'shutdown' && l.worker === undefined && /stopped after/.test(String(l.msg)),
    ),
  );
});

test('WORKERS=2: kill -9 of the primary leaves no worker behind; a worker that cannot start stops the daemon with its status', async (t) => {
  const h = createHarness(t);
  const drp = await startDaemon(h, { WORKERS: '2', CACHE_DIR: h.tempDir('cache'), CA_DIR: h.tempDir('ca') });
  const pids = (drp.lines.find((l) => l.type === 'startup')!.worker_pids as number[]).slice();
  assert.equal(pids.length, 2);
  process.kill(drp.daemon.pid, 'SIGKILL');
  // The workers see their IPC channel close, drain (nothing in flight) and exit.
  await until(`workers ${pids.join(' ')} to exit`, () => pids.every((pid) => !alive(pid)), 15_000);

  // The port is taken: worker 1 cannot listen, so the daemon stops (exit 1) instead of restarting it.
  const busy = await startDaemon(h, { CACHE_DIR: h.tempDir('cache'), CA_DIR: h.tempDir('ca') });
  const second = h.spawn(process.execPath, [BIN], {
    cwd: ROOT,
    env: {
      WORKERS: '2',
      PORT: String(busy.port),
      BIND: '127.0.0.1',
      CACHE_DIR: h.tempDir('cache'),
      CA_DIR: h.tempDir('ca'),
    },
  });
  assert.equal(await second.exited, 1);
  assert.match(second.output(), /port is in use/);
});
