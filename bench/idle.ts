// Idle memory: RSS of each proxy's process tree once it has started and sat idle, before any
// request (what a node pays for a proxy that is not in use; the start-up probe of /ca.crt is
// the only request). drp as `npx drp-server` runs it, its CA created by an unmeasured first
// start (as on every start but the very first); nginx with the bench's configuration, for
// scale. A fresh instance per run.

import type { BenchEnv } from './references/env.ts';
import { rssMB } from './references/proc.ts';
import { type System, startDrp, startNginx } from './references/systems.ts';
import { addSample, type Figure, type Samples } from './report.ts';

/** How long each instance idles before its RSS is read. */
const IDLE_MS = 10_000;

export async function idleBench(env: BenchEnv): Promise<Figure[]> {
  const runs = env.quick ? 2 : 3;
  const rss: Samples = {};
  const starters: [System['name'], () => Promise<System>][] = [];
  if (env.wants('drp')) {
    // The CA is created once, by an unmeasured first start; the measured ones load it.
    const caDir = env.h.tempDir('drp-ca-idle');
    await (await startDrp(env.h, env.upstream, { caDir })).close();
    starters.push(['drp', () => startDrp(env.h, env.upstream, { caDir })]);
  }
  if (env.wants('nginx')) starters.push(['nginx', () => startNginx(env.h, env.upstream)]);
  for (let run = 1; run <= runs; run++) {
    for (const [name, start] of starters) {
      const sys = await start();
      try {
        await new Promise((resolve) => setTimeout(resolve, IDLE_MS));
        const mb = rssMB(sys.pid ?? 0);
        addSample(rss, name, mb);
        env.log(`idle ${run}/${runs} ${name}: RSS ${mb.toFixed(1)} MB after ${IDLE_MS / 1000} s`);
      } finally {
        await sys.close();
      }
    }
  }
  return [
    {
      id: 'memory.idle',
      section: 'Memory',
      label: `RSS after start, ${IDLE_MS / 1000} s idle, no request yet`,
      unit: 'MB',
      better: 'lower',
      samples: rss,
      targets: [{ kind: 'absolute', max: 60 }],
    },
  ];
}
