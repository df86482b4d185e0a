// Manifest-cache hits: requests per second for one cached tag manifest, HEAD and GET, through
// drp with ENABLE_MANIFEST_CACHE=true. One curl process drives the load over kept-alive
// connections (`--parallel`, 4 at a time: through drp, 4 CONNECT tunnels reused for every
// request). For scale, the same requests straight to the upstream registry and through
// distribution's proxy (which always asks the upstream for a tag) are measured too.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../test/harness/index.ts';
import type { BenchEnv } from './references/env.ts';
import { measure } from './references/proc.ts';
import { directSystem, type System, startDistribution, startDrp } from './references/systems.ts';
import { addSample, type Figure, type Samples } from './report.ts';

const PARALLEL = 4;
const ACCEPT =
  'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, ' +
  'application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json';

interface LoadResult {
  rps: number;
  codes: string[];
  connects: number;
}

async function load(env: BenchEnv, sys: System, path: string, method: 'HEAD' | 'GET', n: number) {
  const args = sys.curl(path);
  const url = args.pop()!;
  const cfg = join(env.h.tempDir('curl-config'), 'urls');
  writeFileSync(
    cfg,
    `${Array.from({ length: n }, () => `url = "${url}"\noutput = "/dev/null"`).join('\n')}\n`,
  );
  const curlArgs = [
    '-sS',
    '--no-progress-meter',
    '--fail',
    '-H',
    ACCEPT,
    ...(method === 'HEAD' ? ['-I'] : []),
    '--parallel',
    '--parallel-max',
    String(PARALLEL),
    '-w',
    '%{http_code} %{num_connects}\\n',
    ...args,
    '-K',
    cfg,
  ];
  return measure(sys.pid!, async (): Promise<LoadResult> => {
    const started = performance.now();
    const r = await run('curl', curlArgs, {
      env: { HTTPS_PROXY: undefined, https_proxy: undefined, NO_PROXY: undefined, no_proxy: undefined },
    });
    const seconds = (performance.now() - started) / 1000;
    const lines = r.stdout.trim().split('\n');
    if (lines.length !== n) throw new Error(`${sys.name}: curl reported ${lines.length} of ${n} requests`);
    return {
      rps: n / seconds,
      codes: [...new Set(lines.map((l) => l.split(' ')[0] ?? ''))],
      connects: lines.reduce((a, l) => a + Number(l.split(' ')[1] ?? 0), 0),
    };
  });
}

export async function manifestBench(env: BenchEnv): Promise<Figure[]> {
  const runs = env.quick ? 1 : 3;
  const requests = env.quick ? 1000 : 2000;
  const { repoRef, image } = await env.image();
  const [repo, tag] = repoRef.split(':') as [string, string];
  const path = `/v2/${repo}/manifests/${tag}`;
  const systems: System[] = [];
  if (env.wants('drp')) {
    systems.push(await startDrp(env.h, env.upstream, { env: { ENABLE_MANIFEST_CACHE: 'true' } }));
  }
  if (env.wants('distribution')) systems.push(await startDistribution(env.h, env.upstream));
  if (env.wants('direct')) systems.push(directSystem(env.upstream));

  const rps: Record<'HEAD' | 'GET', Samples> = { HEAD: {}, GET: {} };
  const cpu: Record<'HEAD' | 'GET', Samples> = { HEAD: {}, GET: {} };
  let drpUpstream = 0;
  try {
    for (const sys of systems) {
      await env.warmUp(sys);
      // Fill the cache (GET) and check that HEAD answers too.
      for (const m of ['GET', 'HEAD'] as const) {
        const { result } = await load(env, sys, path, m, 5);
        if (result.codes.join() !== '200') throw new Error(`${sys.name} ${m}: status ${result.codes.join()}`);
      }
    }
    for (let r = 1; r <= runs; r++) {
      for (const sys of systems) {
        for (const m of ['HEAD', 'GET'] as const) {
          await env.upstream.counter.settle(50);
          env.upstream.counter.reset();
          // The references only give scale (and answer ~10x slower): fewer requests for them.
          const n = sys.name === 'drp' ? requests : requests / 4;
          const { result, usage } = await load(env, sys, path, m, n);
          await env.upstream.counter.settle(100);
          if (sys.name === 'drp') drpUpstream += env.upstream.counter.count({ kind: 'manifest' });
          if (result.codes.join() !== '200')
            throw new Error(`${sys.name} ${m}: status ${result.codes.join()}`);
          addSample(rps[m], sys.name, result.rps);
          addSample(cpu[m], sys.name, (usage.cpuSeconds / n) * 1000);
          env.log(
            `manifests run ${r}/${runs} ${sys.name} ${m}: ${result.rps.toFixed(0)} req/s over ${result.connects} ` +
              `connections, ${usage.cpuSeconds.toFixed(2)} CPU s`,
          );
        }
      }
    }
  } finally {
    for (const sys of systems) await sys.close();
  }
  const section = `Manifest-cache hits, one tag manifest (${image.manifest.length} B), curl, ${PARALLEL} connections`;
  const note =
    drpUpstream === 0
      ? 'drp answered every measured request from its manifest cache (0 upstream manifest requests)'
      : `drp made ${drpUpstream} upstream manifest requests during the measured runs`;
  const figures: Figure[] = [];
  for (const m of ['HEAD', 'GET'] as const) {
    figures.push({
      id: `manifests.${m.toLowerCase()}`,
      section,
      label: `${m} requests per second`,
      unit: 'req/s',
      better: 'higher',
      samples: rps[m],
      note,
    });
  }
  for (const m of ['HEAD', 'GET'] as const) {
    figures.push({
      id: `manifests.${m.toLowerCase()}.cpu`,
      section,
      label: `${m}: system CPU per 1000 requests`,
      unit: 'CPU s',
      better: 'lower',
      samples: cpu[m],
    });
  }
  return figures;
}
