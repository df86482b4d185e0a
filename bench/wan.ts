// The WAN-like bench: a cold skopeo pull of the 3-layer 350 MB image through drp (empty cache,
// upstream = the throttled front) and directly from the same front, in the same run,
// alternating which goes first. Wall time per pull, their ratio per run, and drp's CPU.
// BENCH_WAN_MBPS / BENCH_WAN_LATENCY_MS shape the front (default 40 MB/s, 30 ms).
import { timedSkopeoPull } from './references/clients.ts';
import type { BenchEnv } from './references/env.ts';
import { measure } from './references/proc.ts';
import { type System, startDrp } from './references/systems.ts';
import { startWanFront, wanOptions } from './references/wan-front.ts';
import { addSample, type Figure, type Samples } from './report.ts';

export async function wanBench(env: BenchEnv): Promise<Figure[]> {
  const runs = env.quick ? 1 : 3;
  const { repoRef } = await env.image();
  const o = wanOptions();
  const front = await startWanFront(env.h, env.upstream, o);
  const direct: System = {
    name: 'direct',
    pid: undefined,
    curl: (path) => ['--cacert', front.caCertPath, `${front.url}${path}`],
    skopeo: (ref) => ({ ref: `${front.hostPort}/${ref}`, certDir: front.certDir, env: {} }),
    info: { engine: `docker-registry behind a ${o.mbPerSecond} MB/s, ${o.latencyMs} ms front` },
    close: async () => {},
  };
  const drpCa = env.h.tempDir('drp-ca-wan');
  const wall: Samples = {};
  const cpu: Samples = {};
  const ratio: Samples = {};
  try {
    for (let run = 1; run <= runs; run++) {
      const drp = await startDrp(env.h, front, { caDir: drpCa });
      try {
        await env.warmUp(drp);
        let drpWall = 0;
        let directWall = 0;
        const pullDrp = async () => {
          const { result, usage } = await measure(drp.pid!, () =>
            timedSkopeoPull(drp.skopeo(repoRef), env.scratch),
          );
          drpWall = result.wallSeconds;
          addSample(wall, 'drp', result.wallSeconds);
          addSample(cpu, 'drp', usage.cpuSeconds);
        };
        const pullDirect = async () => {
          const result = await timedSkopeoPull(direct.skopeo(repoRef), env.scratch);
          directWall = result.wallSeconds;
          addSample(wall, 'direct', result.wallSeconds);
        };
        if (run % 2 === 1) {
          await pullDrp();
          await pullDirect();
        } else {
          await pullDirect();
          await pullDrp();
        }
        addSample(ratio, 'drp', drpWall / directWall);
        env.log(`wan run ${run}/${runs}: drp ${drpWall.toFixed(2)} s, direct ${directWall.toFixed(2)} s`);
      } finally {
        await drp.close();
      }
    }
  } finally {
    await front.close();
  }
  const section = `Cold pull over a WAN-like front (${o.mbPerSecond} MB/s per connection, ${o.latencyMs} ms), skopeo, 3 layers, 350 MB`;
  return [
    {
      id: 'wan.cold.wall',
      section,
      label: 'wall time per pull (direct: from the same front)',
      unit: 's',
      better: 'lower',
      samples: wall,
      targets: [{ kind: 'ratio', reference: 'direct', max: 1.05 }],
    },
    {
      id: 'wan.cold.ratio',
      section,
      label: 'drp / direct, same run',
      unit: '×',
      better: 'lower',
      samples: ratio,
    },
    {
      id: 'wan.cold.systemCpu',
      section,
      label: 'drp CPU per pull',
      unit: 'CPU s',
      better: 'lower',
      samples: cpu,
    },
  ];
}
