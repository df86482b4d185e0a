import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { test } from 'node:test';
import { createAccessLog } from '../src/access-log.ts';
import { workerCount } from '../src/cluster/count.ts';
import { workerGraceMs } from '../src/cluster/messages.ts';
import { ConfigError, loadConfig } from '../src/config.ts';

const outcome = {
  cacheStatus: 'HIT',
  requestType: 'blob-by-digest',
  method: 'GET',
  registry: 'r.test:443',
  path: '/v2/a/blobs/sha256:x',
  status: 200,
  bytes: 1,
  totalMs: 1,
} as Parameters<ReturnType<typeof createAccessLog>['request']>[0];

test('WORKERS: a number from 1 to 64 or auto (the CPUs this process may use); anything else names the variable', () => {
  assert.equal(workerCount('1'), 1);
  assert.equal(workerCount(' 8 '), 8);
  assert.equal(workerCount('auto'), Math.min(64, availableParallelism()));
  assert.equal(loadConfig({ env: {}, inContainer: false }).workers, 1);
  assert.equal(loadConfig({ env: { WORKERS: '3' }, inContainer: false }).workers, 3);
  for (const bad of ['0', '65', '-1', '1.5', 'two']) {
    assert.throws(
      () => loadConfig({ env: { WORKERS: bad }, inContainer: false }),
      (e: unknown) => e instanceof ConfigError && /WORKERS/.test(e.message),
      bad,
    );
  }
});

test('log lines name their worker: 1 by default, the slot given; lifecycle lines only when given', () => {
  const single: string[] = [];
  const log = createAccessLog('json', (l) => single.push(l));
  log.request(outcome, 'c');
  log.tunnel({
    type: 'tunnel',
    client: 'c',
    host: 'x:443',
    bytesIn: 1,
    bytesOut: 1,
    ms: 1,
    error: undefined,
    notTls: false,
  });
  log.event('startup', 'up');
  const parsed = single.map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(
    parsed.map((p) => p.worker),
    [1, 1, undefined],
  );
  const two: string[] = [];
  const worker = createAccessLog('json', (l) => two.push(l), undefined, { worker: 2 });
  worker.request(outcome, 'c');
  worker.event('shutdown', 'bye');
  assert.deepEqual(
    two.map((l) => (JSON.parse(l) as Record<string, unknown>).worker),
    [2, 2],
  );
  const text: string[] = [];
  createAccessLog('text', (l) => text.push(l)).request(outcome, 'c');
  createAccessLog('text', (l) => text.push(l), undefined, { worker: 2, workerInText: true }).request(
    outcome,
    'c',
  );
  assert.doesNotMatch(text[0]!, /worker=/);
  assert.match(text[1]!, / worker=2\n$/);
});

test("a worker's drain ends before its primary's deadline", () => {
  assert.equal(workerGraceMs(30_000), 29_000);
  assert.equal(workerGraceMs(2000), 1500);
  assert.equal(workerGraceMs(0), 0);
  for (const ms of [0, 100, 1000, 8000, 30_000]) assert.ok(workerGraceMs(ms) <= ms);
});
