// Image pulls with skopeo (`skopeo copy docker://... dir:`) of a 3-layer ~350 MB image:
//   warm: every blob already cached — drp, nginx proxy_cache, distribution's proxy, and a
//         direct pull from the upstream;
//   cold: drp on an empty cache against a direct pull (nginx and distribution's proxy, each on
//         an empty cache, shown for reference).
// skopeo's own CPU dominates a warm pull, so each system's CPU seconds per pull are reported
// beside the wall time, and skopeo's too.

import { type SkopeoTiming, timedSkopeoPull } from './references/clients.ts';
import type { BenchEnv } from './references/env.ts';
import { measure } from './references/proc.ts';
import { directSystem, type System, startDistribution, startDrp, startNginx } from './references/systems.ts';
import { addSample, type Figure, type Samples } from './report.ts';

interface PullSamples {
  wall: Samples;
  systemCpu: Samples;
  clientCpu: Samples;
}

async function timedPull(
  env: BenchEnv,
  sys: System,
  repoRef: string,
  into: PullSamples,
  what: string,
): Promise<SkopeoTiming> {
  const { result, usage } = await measure(sys.pid!, () => timedSkopeoPull(sys.skopeo(repoRef), env.scratch));
  addSample(into.wall, sys.name, result.wallSeconds);
  addSample(into.clientCpu, sys.name, result.clientCpuSeconds);
  addSample(into.systemCpu, sys.name, usage.cpuSeconds);
  env.log(
    `${what} ${sys.name}: ${result.wallSeconds.toFixed(2)} s, skopeo ${result.clientCpuSeconds.toFixed(2)} CPU s, ` +
      `system ${usage.cpuSeconds.toFixed(2)} CPU s`,
  );
  return result;
}

function figures(kind: 'warm' | 'cold', s: PullSamples): Figure[] {
  const section = `${kind === 'warm' ? 'Warm pull (all hits)' : 'Cold pull (empty cache)'}, skopeo, 3 layers, 350 MB`;
  return [
    {
      id: `pull.${kind}.wall`,
      section,
      label: 'wall time per pull',
      unit: 's',
      better: 'lower',
      samples: s.wall,
      targets:
        kind === 'warm'
          ? [{ kind: 'ratio', reference: 'distribution', max: 1 }]
          : [{ kind: 'ratio', reference: 'direct', max: 1.15 }],
    },
    {
      id: `pull.${kind}.systemCpu`,
      section,
      label: 'system CPU per pull (the proxy; for direct: the upstream)',
      unit: 'CPU s',
      better: 'lower',
      samples: s.systemCpu,
    },
    {
      id: `pull.${kind}.clientCpu`,
      section,
      label: 'skopeo CPU per pull',
      unit: 'CPU s',
      better: 'lower',
      samples: s.clientCpu,
    },
  ];
}

export async function pullBench(env: BenchEnv): Promise<Figure[]> {
  const runs = env.quick ? 1 : 3;
  const warmRuns = env.quick ? 1 : 5;
  const { repoRef } = await env.image();
  const direct = directSystem(env.upstream);
  const drpCa = env.h.tempDir('drp-ca-pull');
  const startSystems = async (): Promise<System[]> => {
    const list: System[] = [];
    if (env.wants('direct')) list.push(direct);
    if (env.wants('drp')) list.push(await startDrp(env.h, env.upstream, { caDir: drpCa }));
    if (env.wants('nginx')) list.push(await startNginx(env.h, env.upstream));
    if (env.wants('distribution')) list.push(await startDistribution(env.h, env.upstream));
    return list;
  };

  // Warm: one pull through each cache fills it (and warms the page cache for direct), then runs.
  const warm: PullSamples = { wall: {}, systemCpu: {}, clientCpu: {} };
  let systems = await startSystems();
  try {
    for (const sys of systems) await env.warmUp(sys);
    for (const sys of systems) await timedSkopeoPull(sys.skopeo(repoRef), env.scratch);
    for (let run = 1; run <= warmRuns; run++) {
      for (const sys of systems) await timedPull(env, sys, repoRef, warm, `warm pull ${run}/${warmRuns}`);
    }
  } finally {
    for (const sys of systems) await sys.close();
  }

  // Cold: each proxy restarted on an empty cache before every pull (its process warmed up first).
  const cold: PullSamples = { wall: {}, systemCpu: {}, clientCpu: {} };
  for (let run = 1; run <= runs; run++) {
    systems = await startSystems();
    try {
      for (const sys of systems) await env.warmUp(sys);
      for (const sys of systems) await timedPull(env, sys, repoRef, cold, `cold pull ${run}/${runs}`);
    } finally {
      for (const sys of systems) await sys.close();
    }
  }
  return [...figures('warm', warm), ...figures('cold', cold)];
}
