// Replicas: several drp-server daemons on one CACHE_DIR and CA_DIR behind haproxy (a real load
// balancer, TCP mode), clients using haproxy as their HTTPS_PROXY, a real registry upstream
// behind a harness front that makes the fill slow. A replica killed mid-fill must not take the
// other replicas' clients down with it: a follower takes the fill over and resumes it with
// Range (docs/scale-out.md, docs/blob-engine.md#across-processes).
import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { createHarness } from '../harness/index.ts';
import { alive, until } from './lib.ts';
import { imageOnRegistry, leaderPid, replicasBehindHaproxy } from './replicas-lib.ts';

test('kill -9 of the replica leading a slow fill: the clients of the other replicas complete with the right bytes', async (t) => {
  const h = createHarness(t);
  const { image, front, stall } = await imageOnRegistry(h, [4_000_000]);
  const r = await replicasBehindHaproxy(h, 3, front);
  const blob = image.layers[0]!.digest;
  stall.add(blob);

  const pulls = Array.from({ length: 6 }, () => r.fetch('team/app', blob));
  const pids = r.replicas.map((x) => x.daemon.pid);
  let leader: number | undefined;
  await until('a replica to lead the fill', async () => {
    leader = await leaderPid(h, front.port, pids);
    return leader !== undefined;
  });
  // Mid-fill: once clients have bytes (the leader's spool holds the first 512 KiB; the
  // upstream then pauses 6 s).
  await until('clients to receive the first bytes', async () => {
    const bodies = (await readdir(h.dir)).filter((f) => /^curl-.*\.body$/.test(f));
    const sizes = await Promise.all(bodies.map(async (f) => (await stat(join(h.dir, f))).size));
    return sizes.some((size) => size > 0);
  });
  process.kill(leader!, 'SIGKILL');
  await until('the leader to die', () => !alive(leader!));
  const killed = `r${pids.indexOf(leader!) + 1}`;
  const results = await Promise.all(pulls);
  const survivors = results.filter((g) => r.balancer.servedBy(g.localPort) !== killed);
  assert.ok(survivors.length >= 2, `clients on surviving replicas: ${survivors.length}`);
  for (const got of survivors) {
    assert.equal(got.status, 200);
    assert.equal(got.digest, blob);
    assert.equal(got.bytes, image.layers[0]!.size);
  }
  // One upstream fill, taken over once: the dead leader's GET and the taker's, which resumes
  // where the spool ended (Range), not a fetch per replica.
  await front.counter.settle();
  const gets = front.counter.requests({ kind: 'blob', method: 'GET', path: new RegExp(blob) });
  assert.equal(gets.length, 2, front.counter.summary({ kind: 'blob' }));
  const ranges = gets.map((g) => g.headers?.range);
  assert.equal(
    ranges.filter((range) => /^bytes=[1-9]\d*-$/.test(String(range))).length,
    1,
    JSON.stringify(gets),
  );
  // A later client gets it too, from the cache.
  const later = await r.fetch('team/app', blob);
  assert.equal(later.digest, blob);
  await front.counter.settle();
  assert.equal(front.counter.count({ kind: 'blob', method: 'GET', path: new RegExp(blob) }), 2);
});
