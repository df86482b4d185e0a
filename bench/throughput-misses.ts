// Concurrent cold misses: 16 curl clients ask at once for one ~200 MB blob nobody has cached.
// Per system (fresh cache each run): upstream GETs for that blob, the time until the last
// client is done, and, for scale, the time and the proxy's CPU of a single cold fetch by one
// client alone. drp against nginx proxy_cache (the original's engine; its proxy_cache_lock
// holds the other clients until the fill is done, then serves them from the cache) and
// distribution's proxy.

import { curlBatch } from './references/clients.ts';
import type { BenchEnv } from './references/env.ts';
import { measure } from './references/proc.ts';
import {
  type System,
  type SystemName,
  startDistribution,
  startDrp,
  startNginx,
} from './references/systems.ts';
import { addSample, type Figure, type Samples } from './report.ts';

const CLIENTS = 16;

type Starter = () => Promise<System>;

export async function missesBench(env: BenchEnv): Promise<Figure[]> {
  const runs = env.quick ? 1 : 3;
  const blob = await env.blob();
  const starters: [SystemName, Starter][] = [];
  // One CA dir for every drp restart, as a real installation keeps its CA.
  const drpCa = env.h.tempDir('drp-ca-misses');
  if (env.wants('drp')) starters.push(['drp', () => startDrp(env.h, env.upstream, { caDir: drpCa })]);
  if (env.wants('nginx')) starters.push(['nginx', () => startNginx(env.h, env.upstream)]);
  if (env.wants('distribution'))
    starters.push(['distribution', () => startDistribution(env.h, env.upstream)]);

  const single: Samples = {};
  const singleCpu: Samples = {};
  const last: Samples = {};
  const ratio: Samples = {};
  const gets: Samples = {};
  const rss: Samples = {};
  const warm: Samples = {};
  const overWarm: Samples = {};
  const isBlobGet = { kind: 'blob', method: 'GET', path: blob.path } as const;

  for (let run = 1; run <= runs; run++) {
    for (const [name, start] of starters) {
      // A single cold fetch, alone.
      let sys = await start();
      let one: number;
      try {
        await env.warmUp(sys);
        const { result: r, usage } = await measure(sys.pid!, () => curlBatch(1, sys.curl(blob.path)));
        if (r.bytes !== blob.size) throw new Error(`${name}: single cold fetch got ${r.bytes} bytes`);
        one = r.wallSeconds;
        addSample(singleCpu, name, usage.cpuSeconds);
      } finally {
        await sys.close();
      }
      // 16 at once, on another fresh cache.
      sys = await start();
      try {
        await env.warmUp(sys);
        await env.upstream.counter.settle();
        env.upstream.counter.reset();
        const { result, usage } = await measure(sys.pid!, () => curlBatch(CLIENTS, sys.curl(blob.path)));
        if (result.bytes !== CLIENTS * blob.size) {
          throw new Error(`${name}: ${CLIENTS} cold clients got ${result.bytes} bytes in total`);
        }
        await env.upstream.counter.settle(300);
        const n = env.upstream.counter.count(isBlobGet);
        addSample(single, name, one);
        addSample(last, name, result.wallSeconds);
        addSample(ratio, name, result.wallSeconds / one);
        addSample(gets, name, n);
        addSample(rss, name, usage.peakRssMB);
        // The same 16 clients again, now all hits: what delivering 16 copies costs by itself.
        const hits = await curlBatch(CLIENTS, sys.curl(blob.path));
        addSample(warm, name, hits.wallSeconds);
        addSample(overWarm, name, result.wallSeconds / hits.wallSeconds);
        env.log(
          `misses run ${run}/${runs} ${name}: single ${one.toFixed(2)} s, last of ${CLIENTS} ` +
            `${result.wallSeconds.toFixed(2)} s (all hits: ${warm[name]?.at(-1)?.toFixed(2)} s), ${n} upstream GETs, ` +
            `peak RSS ${usage.peakRssMB.toFixed(0)} MB`,
        );
      } finally {
        await sys.close();
      }
    }
  }
  const section = `Concurrent cold misses, ${CLIENTS} clients, one 200 MB blob`;
  return [
    {
      id: 'misses.upstreamGets',
      section,
      label: 'upstream GETs of the blob',
      unit: 'requests',
      better: 'lower',
      samples: gets,
      targets: [{ kind: 'absolute', equals: 1 }],
    },
    {
      id: 'misses.lastClient',
      section,
      label: `time until the last of ${CLIENTS} clients is done`,
      unit: 's',
      better: 'lower',
      samples: last,
      targets: [{ kind: 'ratio', reference: 'nginx', max: 1.2 }],
    },
    {
      id: 'misses.single',
      section,
      label: 'a single cold fetch, one client',
      unit: 's',
      better: 'lower',
      samples: single,
      targets: [{ kind: 'ratio', reference: 'nginx', max: 1.2 }],
    },
    {
      id: 'misses.singleCpu',
      section,
      label: 'a single cold fetch, one client: proxy CPU (the whole fill)',
      unit: 'CPU s',
      better: 'lower',
      samples: singleCpu,
      targets: [{ kind: 'ratio', reference: 'nginx', max: 1.5 }],
    },
    {
      id: 'misses.lastOverSingle',
      section,
      label: `last of ${CLIENTS} / single cold fetch (same system)`,
      unit: '×',
      better: 'lower',
      samples: ratio,
      targets: [{ kind: 'absolute', max: 1.3 }],
    },
    {
      id: 'misses.warm',
      section,
      label: `the same ${CLIENTS} clients once the blob is cached (all hits)`,
      unit: 's',
      better: 'lower',
      samples: warm,
    },
    {
      id: 'misses.lastOverWarm',
      section,
      label: `last of ${CLIENTS} cold / ${CLIENTS} hits (same system): the cost of sharing one fill`,
      unit: '×',
      better: 'lower',
      samples: overWarm,
      note:
        'on loopback the upstream is faster than TLS delivery to 16 clients, so 16 cold clients are bound by ' +
        'delivery (compare with 16 hits), not by the single upstream fetch',
    },
    {
      id: 'misses.rss',
      section: 'Memory',
      label: `peak RSS during ${CLIENTS} concurrent cold misses`,
      unit: 'MB',
      better: 'lower',
      samples: rss,
      targets: [{ kind: 'absolute', max: 100 }],
    },
  ];
}
