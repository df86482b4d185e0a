// Cache-hit throughput: one ~200 MB blob, already cached, fetched with curl at concurrency
// 1, 4 and 16 through drp (as an HTTPS proxy), nginx with proxy_cache over TLS, and
// distribution's proxy. Aggregate MB/s = bytes of the whole batch / its wall time; the
// system's CPU seconds per GB served beside it; peak RSS of each system during the
// concurrency-16 batches.

import { curlBatch } from './references/clients.ts';
import type { BenchEnv } from './references/env.ts';
import { measure } from './references/proc.ts';
import { type System, startDistribution, startDrp, startNginx } from './references/systems.ts';
import { addSample, type Figure, type Samples } from './report.ts';

export const CONCURRENCY = [1, 4, 16] as const;

async function warm(env: BenchEnv, sys: System, path: string, size: number): Promise<void> {
  for (let i = 0; i < 2; i++) {
    const r = await curlBatch(1, sys.curl(path));
    if (r.bytes !== size) throw new Error(`${sys.name}: warming got ${r.bytes} bytes, expected ${size}`);
  }
  // Let background cache writes (nginx's, distribution's) finish before measuring hits.
  await new Promise((r) => setTimeout(r, 500));
  env.log(`${sys.name}: warm`);
}

export async function throughputBench(env: BenchEnv): Promise<Figure[]> {
  const runs = env.quick ? 2 : 5;
  const blob = await env.blob();
  const systems: System[] = [];
  if (env.wants('drp')) systems.push(await startDrp(env.h, env.upstream));
  if (env.wants('nginx')) systems.push(await startNginx(env.h, env.upstream));
  if (env.wants('distribution')) systems.push(await startDistribution(env.h, env.upstream));
  try {
    for (const sys of systems) {
      await env.warmUp(sys);
      await warm(env, sys, blob.path, blob.size);
    }
    const mbps: Record<number, Samples> = { 1: {}, 4: {}, 16: {} };
    const cpuPerGB: Record<number, Samples> = { 1: {}, 4: {}, 16: {} };
    const rss: Samples = {};
    await env.upstream.counter.settle();
    env.upstream.counter.reset();
    // Systems alternate batch by batch, so a change in the machine's load hits them alike.
    for (let run = 1; run <= runs; run++) {
      for (const c of CONCURRENCY) {
        for (const sys of systems) {
          const { result, usage } = await measure(sys.pid!, () => curlBatch(c, sys.curl(blob.path)));
          if (result.bytes !== c * blob.size) {
            throw new Error(`${sys.name} c=${c}: got ${result.bytes} bytes, expected ${c * blob.size}`);
          }
          addSample(mbps[c]!, sys.name, result.mbPerSecond);
          addSample(cpuPerGB[c]!, sys.name, usage.cpuSeconds / (result.bytes / 1e9));
          if (c === 16) addSample(rss, sys.name, usage.peakRssMB);
          env.log(
            `throughput run ${run}/${runs} ${sys.name} c=${c}: ${result.mbPerSecond.toFixed(0)} MB/s, ` +
              `${usage.cpuSeconds.toFixed(2)} CPU s, peak RSS ${usage.peakRssMB.toFixed(0)} MB`,
          );
        }
      }
    }
    await env.upstream.counter.settle();
    const upstreamBlobGets = env.upstream.counter.count({ kind: 'blob', method: 'GET' });
    const note =
      upstreamBlobGets === 0
        ? 'all hits: no upstream blob GET during the measured batches'
        : `${upstreamBlobGets} upstream blob GETs during the measured batches (not all hits)`;
    const figures: Figure[] = [];
    for (const c of CONCURRENCY) {
      figures.push({
        id: `throughput.c${c}`,
        section: 'Cache-hit throughput, 200 MB blob, curl',
        label: `concurrency ${c}, aggregate`,
        unit: 'MB/s',
        better: 'higher',
        samples: mbps[c] ?? {},
        // Issue 13: hits stay at least as fast as nginx at every concurrency.
        targets: [{ kind: 'ratio', reference: 'nginx', min: 1 }],
        note,
      });
    }
    for (const c of CONCURRENCY) {
      figures.push({
        id: `throughput.cpu.c${c}`,
        section: 'Cache-hit throughput, 200 MB blob, curl',
        label: `concurrency ${c}, system CPU per GB served`,
        unit: 'CPU s/GB',
        better: 'lower',
        samples: cpuPerGB[c] ?? {},
      });
    }
    figures.push({
      id: 'memory.c16',
      section: 'Memory',
      label: 'peak RSS during the concurrency-16 cache-hit batches',
      unit: 'MB',
      better: 'lower',
      samples: rss,
      targets: [{ kind: 'absolute', max: 100 }],
    });
    return figures;
  } finally {
    for (const sys of systems) await sys.close();
  }
}
