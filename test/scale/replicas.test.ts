// Replicas: several drp-server daemons on one CACHE_DIR and CA_DIR behind haproxy (a real load
// balancer, TCP mode), clients using haproxy as their HTTPS_PROXY, a real registry upstream
// behind a harness front that makes the fill slow. A replica killed mid-fill must not take the
// other replicas' clients down with it (docs/scale-out.md).
import assert from 'node:assert/strict';
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
  // A later client gets it too, from the cache.
  const later = await r.fetch('team/app', blob);
  assert.equal(later.digest, blob);
});
