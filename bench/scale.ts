// Scale-out (issue 14), on this machine: 1 vs 2 workers (WORKERS) for 16 concurrent cache hits
// and 16 concurrent cold misses of one blob (wall time and drp's CPU seconds per GB served, the
// whole process tree: primary and workers), and the 2-worker/1-worker ratio of each round (the
// two alternate round by round, so load changes hit both); RSS of the primary and per worker,
// idle and at the peak of the hit batches; and 2 replicas (two daemons on one CACHE_DIR) under
// a herd of 16 cold clients, 8 on each: upstream GETs of the blob, and drp's CPU per GB served
// against the same herd on one process (following a fill from another process vs the same one).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { curlBatch, NO_PROXY_ENV } from './references/clients.ts';
import type { BenchEnv } from './references/env.ts';
import { cpuSeconds, measure, processTree } from './references/proc.ts';
import { type System, startDrp } from './references/systems.ts';
import { addSample, type Figure, type Samples } from './report.ts';

const CLIENTS = 16;
const SECTION = 'Scale-out: workers and replicas (issue 14)';

/** One process's resident set, MB (10^6 bytes). */
function rssMB(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? (Number(m[1]) * 1024) / 1e6 : 0;
  } catch {
    return 0;
  }
}

/**
 * `n` curl clients at once on one URL, like curlBatch, but a client that fails is counted
 * instead of failing the bench: a cold herd across processes is what this measures, and a cut
 * client is a finding to report, with the bytes that did arrive.
 */
async function herd(
  n: number,
  args: string[],
): Promise<{ wallSeconds: number; bytes: number; failed: number }> {
  const started = performance.now();
  const one = () =>
    new Promise<{ bytes: number; ok: boolean }>((resolve) => {
      const child = spawn(
        'curl',
        ['-sS', '-o', '/dev/null', '-w', '%{http_code} %{size_download}', ...args],
        {
          env: { ...process.env, ...Object.fromEntries(Object.keys(NO_PROXY_ENV).map((k) => [k, ''])) },
          stdio: ['ignore', 'pipe', 'ignore'],
        },
      );
      let out = '';
      child.stdout.on('data', (b: Buffer) => {
        out += b.toString();
      });
      child.on('close', (code) => {
        const [status, bytes] = out.trim().split(' ');
        resolve({ bytes: Number(bytes ?? 0), ok: code === 0 && status === '200' });
      });
    });
  const clients = await Promise.all(Array.from({ length: n }, one));
  return {
    wallSeconds: (performance.now() - started) / 1000,
    bytes: clients.reduce((a, c) => a + c.bytes, 0),
    failed: clients.filter((c) => !c.ok).length,
  };
}

/** The workers of a daemon: its descendants (none with WORKERS=1: the process itself). */
function workerPids(sys: System): number[] {
  const tree = processTree(sys.pid!);
  return tree.length > 1 ? tree.slice(1) : tree;
}

/**
 * startDrp waits 20 s for a daemon; on a machine this loaded (load average 30+ on 2 cores) a
 * start sometimes takes longer: one more try before the section fails.
 */
async function patiently(env: BenchEnv, start: () => Promise<System>): Promise<System> {
  try {
    return await start();
  } catch (error) {
    env.log(`a drp start failed (${(error as Error).message.split('\n')[0]}); trying once more`);
    return start();
  }
}

async function startWorkers(
  env: BenchEnv,
  workers: number,
  extra: Record<string, string> = {},
): Promise<System> {
  const sys = await patiently(env, () =>
    startDrp(env.h, env.upstream, { env: { WORKERS: String(workers), ...extra } }),
  );
  // startDrp returns once one worker answers; wait for all of them.
  const proxy = String(sys.info.proxy);
  for (let i = 0; i < 200; i++) {
    const body = (await (await fetch(`${proxy}/healthz`)).json()) as { workers_up?: number };
    if ((body.workers_up ?? 1) >= workers) return sys;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`drp with WORKERS=${workers}: not every worker came up`);
}

async function pushBlob(env: BenchEnv, size: number, tag: string): Promise<{ path: string; size: number }> {
  const image = await env.h.createImage({ layers: [size] });
  await env.upstream.push(image, `scale/bench:${tag}`);
  const layer = image.layers[0]!;
  return { path: `/v2/scale/bench/blobs/${layer.digest}`, size: layer.size };
}

function figure(
  id: string,
  label: string,
  unit: string,
  better: 'higher' | 'lower',
  samples: Samples,
  note?: string,
): Figure {
  return { id, section: SECTION, label, unit, better, samples, ...(note ? { note } : {}) };
}

export async function scaleBench(env: BenchEnv): Promise<Figure[]> {
  const runs = env.quick ? 3 : 5;
  const size = env.quick ? 40e6 : 100e6;
  const counts = [1, 2] as const;
  const figures: Figure[] = [];

  // --- hits: both daemons up for the whole section, warmed, then alternating batches ---
  const hit = await pushBlob(env, size, 'hits');
  const hitWall: Record<number, Samples> = { 1: {}, 2: {} };
  const hitCpu: Record<number, Samples> = { 1: {}, 2: {} };
  const hitRatioWall: Samples = {};
  const hitRatioCpu: Samples = {};
  const idleWorker: Samples = {};
  const peakWorker: Samples = {};
  const primary: Samples = {};
  const daemons = new Map<number, System>();
  try {
    for (const n of counts) daemons.set(n, await startWorkers(env, n));
    for (const [n, sys] of daemons) {
      await env.warmUp(sys);
      for (const pid of workerPids(sys)) addSample(idleWorker, 'drp', rssMB(pid));
      if (n > 1) addSample(primary, 'drp', rssMB(sys.pid!));
      // Every worker must hold the blob: a few sequential fetches reach each of them.
      for (let i = 0; i < 2 * n + 1; i++) await curlBatch(1, sys.curl(hit.path));
    }
    await env.upstream.counter.settle();
    env.upstream.counter.reset();
    for (let run = 1; run <= runs; run++) {
      const round: Record<number, { wall: number; cpu: number }> = {};
      for (const n of run % 2 ? counts : [...counts].reverse()) {
        const sys = daemons.get(n)!;
        let peak = 0;
        const pids = workerPids(sys);
        const timer = setInterval(() => {
          for (const pid of pids) peak = Math.max(peak, rssMB(pid));
        }, 50);
        const { result, usage } = await measure(sys.pid!, () => curlBatch(CLIENTS, sys.curl(hit.path)));
        clearInterval(timer);
        if (result.bytes !== CLIENTS * hit.size) throw new Error(`WORKERS=${n}: got ${result.bytes} bytes`);
        const gb = result.bytes / 1e9;
        round[n] = { wall: result.wallSeconds, cpu: usage.cpuSeconds / gb };
        addSample(hitWall[n]!, 'drp', result.wallSeconds);
        addSample(hitCpu[n]!, 'drp', usage.cpuSeconds / gb);
        if (n === 2) addSample(peakWorker, 'drp', peak);
        env.log(
          `scale hits run ${run}/${runs} WORKERS=${n}: ${result.wallSeconds.toFixed(2)} s, ${(usage.cpuSeconds / gb).toFixed(2)} CPU s/GB`,
        );
      }
      addSample(hitRatioWall, 'drp', round[2]!.wall / round[1]!.wall);
      addSample(hitRatioCpu, 'drp', round[2]!.cpu / round[1]!.cpu);
    }
    await env.upstream.counter.settle();
  } finally {
    for (const sys of daemons.values()) await sys.close();
  }
  const hitGets = env.upstream.counter.count({ kind: 'blob', method: 'GET', path: hit.path });
  const hitNote =
    hitGets === 0 ? 'all hits' : `${hitGets} upstream GETs during the measured batches (not all hits)`;
  for (const n of counts) {
    figures.push(
      figure(
        `scale.hits.wall.w${n}`,
        `16 concurrent hits, ${size / 1e6} MB, WORKERS=${n}: wall`,
        's',
        'lower',
        hitWall[n]!,
        hitNote,
      ),
    );
    figures.push(
      figure(
        `scale.hits.cpu.w${n}`,
        `16 concurrent hits, WORKERS=${n}: CPU per GB served`,
        'CPU s/GB',
        'lower',
        hitCpu[n]!,
      ),
    );
  }
  figures.push(
    figure(
      'scale.hits.wall.ratio',
      '16 concurrent hits: wall, WORKERS=2 / WORKERS=1',
      '×',
      'lower',
      hitRatioWall,
    ),
  );
  figures.push(
    figure(
      'scale.hits.cpu.ratio',
      '16 concurrent hits: CPU per GB, WORKERS=2 / WORKERS=1',
      '×',
      'lower',
      hitRatioCpu,
    ),
  );

  // --- cold misses: a fresh daemon (fresh cache) and a fresh blob for every sample ---
  const missWall: Record<number, Samples> = { 1: {}, 2: {} };
  const missCpu: Record<number, Samples> = { 1: {}, 2: {} };
  const missRatioWall: Samples = {};
  const missRatioCpu: Samples = {};
  const missGets: Record<number, number[]> = { 1: [], 2: [] };
  const missFailed: Record<number, number[]> = { 1: [], 2: [] };
  for (let run = 1; run <= runs; run++) {
    const round: Record<number, { wall: number; cpu: number }> = {};
    for (const n of run % 2 ? counts : [...counts].reverse()) {
      const blob = await pushBlob(env, size, `miss-${run}-${n}`);
      const sys = await startWorkers(env, n);
      try {
        await env.warmUp(sys);
        await env.upstream.counter.settle();
        env.upstream.counter.reset();
        const { result, usage } = await measure(sys.pid!, () => herd(CLIENTS, sys.curl(blob.path)));
        missFailed[n]!.push(result.failed);
        await env.upstream.counter.settle();
        missGets[n]!.push(env.upstream.counter.count({ kind: 'blob', method: 'GET', path: blob.path }));
        const gb = result.bytes / 1e9;
        round[n] = { wall: result.wallSeconds, cpu: usage.cpuSeconds / gb };
        addSample(missWall[n]!, 'drp', result.wallSeconds);
        addSample(missCpu[n]!, 'drp', usage.cpuSeconds / gb);
        env.log(
          `scale misses run ${run}/${runs} WORKERS=${n}: ${result.wallSeconds.toFixed(2)} s, ${(usage.cpuSeconds / gb).toFixed(2)} CPU s/GB`,
        );
      } finally {
        await sys.close();
      }
    }
    addSample(missRatioWall, 'drp', round[2]!.wall / round[1]!.wall);
    addSample(missRatioCpu, 'drp', round[2]!.cpu / round[1]!.cpu);
  }
  for (const n of counts) {
    figures.push(
      figure(
        `scale.miss.wall.w${n}`,
        `16 concurrent cold misses, ${size / 1e6} MB, WORKERS=${n}: wall`,
        's',
        'lower',
        missWall[n]!,
        `upstream GETs per blob: ${missGets[n]!.join(', ')}; clients cut (of 16): ${missFailed[n]!.join(', ')}`,
      ),
    );
    figures.push(
      figure(
        `scale.miss.cpu.w${n}`,
        `16 concurrent cold misses, WORKERS=${n}: CPU per GB served`,
        'CPU s/GB',
        'lower',
        missCpu[n]!,
      ),
    );
  }
  figures.push(
    figure(
      'scale.miss.wall.ratio',
      '16 concurrent cold misses: wall, WORKERS=2 / WORKERS=1',
      '×',
      'lower',
      missRatioWall,
    ),
  );
  figures.push(
    figure(
      'scale.miss.cpu.ratio',
      '16 concurrent cold misses: CPU per GB, WORKERS=2 / WORKERS=1',
      '×',
      'lower',
      missRatioCpu,
    ),
  );
  figures.push(
    figure('scale.rss.worker.idle', 'RSS per worker, idle after a warm-up pull', 'MB', 'lower', idleWorker),
  );
  figures.push(
    figure(
      'scale.rss.worker.peak',
      'RSS per worker, peak during 16 concurrent hits (WORKERS=2)',
      'MB',
      'lower',
      peakWorker,
    ),
  );
  figures.push(figure('scale.rss.primary', 'RSS of the primary (WORKERS=2)', 'MB', 'lower', primary));

  // --- 2 replicas on one directory, a herd of 16 (8 on each) vs the same herd on one process ---
  const herdGets: Samples = {};
  const herdFailed: number[] = [];
  const sameCpu: Samples = {};
  const crossCpu: Samples = {};
  for (let run = 1; run <= runs; run++) {
    // One process: 16 clients on one replica.
    const soloBlob = await pushBlob(env, size, `herd-solo-${run}`);
    const solo = await startWorkers(env, 1);
    try {
      await env.warmUp(solo);
      const { result, usage } = await measure(solo.pid!, () => curlBatch(CLIENTS, solo.curl(soloBlob.path)));
      addSample(sameCpu, 'drp', usage.cpuSeconds / (result.bytes / 1e9));
    } finally {
      await solo.close();
    }
    // Two replicas on one CACHE_DIR (and CA_DIR), 8 clients each, at once.
    const blob = await pushBlob(env, size, `herd-${run}`);
    const cacheDir = env.h.tempDir('scale-shared-cache');
    const caDir = env.h.tempDir('scale-shared-ca');
    const a = await patiently(env, () =>
      startDrp(env.h, env.upstream, { caDir, env: { CACHE_DIR: cacheDir } }),
    );
    const b = await patiently(env, () =>
      startDrp(env.h, env.upstream, { caDir, env: { CACHE_DIR: cacheDir } }),
    );
    try {
      await env.warmUp(a);
      await env.warmUp(b);
      await env.upstream.counter.settle();
      env.upstream.counter.reset();
      const before = cpuSeconds(a.pid!) + cpuSeconds(b.pid!);
      const [ra, rb] = await Promise.all([
        herd(CLIENTS / 2, a.curl(blob.path)),
        herd(CLIENTS / 2, b.curl(blob.path)),
      ]);
      const cpu = cpuSeconds(a.pid!) + cpuSeconds(b.pid!) - before;
      herdFailed.push(ra.failed + rb.failed);
      await env.upstream.counter.settle();
      addSample(
        herdGets,
        'drp',
        env.upstream.counter.count({ kind: 'blob', method: 'GET', path: blob.path }),
      );
      addSample(crossCpu, 'drp', cpu / ((ra.bytes + rb.bytes) / 1e9));
      env.log(
        `scale herd run ${run}/${runs}: ${herdGets.drp?.at(-1)} upstream GETs, ${crossCpu.drp?.at(-1)?.toFixed(2)} vs ${sameCpu.drp?.at(-1)?.toFixed(2)} CPU s/GB`,
      );
    } finally {
      await a.close();
      await b.close();
    }
  }
  figures.push(
    figure(
      'scale.herd.gets',
      '2 replicas on one directory, 16 cold clients (8 each): upstream GETs of the blob',
      'GETs',
      'lower',
      herdGets,
      `clients cut (of 16): ${herdFailed.join(', ')}`,
    ),
  );
  figures.push(
    figure(
      'scale.herd.cpu.same',
      '16 cold clients on one process: drp CPU per GB served',
      'CPU s/GB',
      'lower',
      sameCpu,
    ),
  );
  figures.push(
    figure(
      'scale.herd.cpu.cross',
      '16 cold clients on 2 replicas (8 each): drp CPU per GB served, both',
      'CPU s/GB',
      'lower',
      crossCpu,
    ),
  );
  return figures;
}
