// Blob engine benchmarks (issue 4), as ratios measured in one run:
//
//   1. cache-hit throughput of one ~200 MB blob over TLS at concurrency 1, 4, 16: the @drp/core
//      middleware in an HTTPS server against Debian's nginx as a TLS reverse proxy with
//      proxy_cache (the original's engine), both serving from a warm cache; CPU seconds of each
//      system beside its figure. Target: drp >= 0.8x nginx at concurrency 1.
//   2. a cold fetch of the blob through the middleware against a direct fetch from the upstream
//      registry. Target: <= 1.15x the direct time.
//   3. peak RSS of the middleware's process with 16 concurrent 200 MB downloads, cold (one
//      shared fill) and warm (16 hits). Target: under 200 MB.
//
//   pnpm build && node --import tsx bench/blobs.ts        (BENCH_QUICK=1: fewer runs)
//
// Figures are medians; nothing is asserted. Results also go to bench/results/blobs-<time>.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { startBlobServer } from './lib/blob-system.ts';
import { type BatchResult, curlBatch } from './references/clients.ts';
import { type BenchBlob, createBenchEnv } from './references/env.ts';
import { measure } from './references/proc.ts';
import { directSystem, REPO_ROOT, type System, startNginx } from './references/systems.ts';

const CONCURRENCY = [1, 4, 16] as const;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
}

interface Sample {
  mbps: number;
  cpu: number;
  peakRssMB: number;
  seconds: number;
}

async function batch(sys: System, blob: BenchBlob, c: number): Promise<Sample> {
  const pid = sys.pid;
  if (pid === undefined) throw new Error(`${sys.name} has no process to measure`);
  const { result, usage } = await measure<BatchResult>(pid, () => curlBatch(c, sys.curl(blob.path)));
  if (result.bytes !== c * blob.size) {
    throw new Error(`${sys.name} c=${c}: got ${result.bytes} bytes, expected ${c * blob.size}`);
  }
  return {
    mbps: result.mbPerSecond,
    cpu: usage.cpuSeconds,
    peakRssMB: usage.peakRssMB,
    seconds: result.wallSeconds,
  };
}

async function main(): Promise<void> {
  const env = await createBenchEnv();
  const runs = env.quick ? 2 : 3;
  const lines: string[] = [];
  const json: Record<string, unknown> = { startedAt: new Date().toISOString(), runs };
  try {
    const blob = await env.blob();

    // --- 1. hit throughput -----------------------------------------------------------------
    const drp = await startBlobServer(env.h, env.upstream);
    const nginx = await startNginx(env.h, env.upstream);
    for (const sys of [drp, nginx]) {
      for (let i = 0; i < 2; i += 1) await batch(sys, blob, 1); // fill, then one warm read
      await new Promise((r) => setTimeout(r, 500));
    }
    const hits: Record<'drp' | 'nginx', Record<number, Sample[]>> = { drp: {}, nginx: {} };
    for (let run = 1; run <= runs; run += 1) {
      for (const c of CONCURRENCY) {
        for (const sys of [drp, nginx]) {
          const sample = await batch(sys, blob, c);
          const key = sys === drp ? 'drp' : 'nginx';
          const list = hits[key][c] ?? [];
          list.push(sample);
          hits[key][c] = list;
          env.log(
            `hit ${key} c=${c} run ${run}: ${sample.mbps.toFixed(0)} MB/s, ${sample.cpu.toFixed(2)} CPU s, ` +
              `RSS ${sample.peakRssMB.toFixed(0)} MB`,
          );
        }
      }
    }
    lines.push('| cache hit, 200 MB over TLS | drp MB/s (CPU s) | nginx MB/s (CPU s) | drp / nginx |');
    lines.push('| --- | --- | --- | --- |');
    for (const c of CONCURRENCY) {
      const d = hits.drp[c] ?? [];
      const n = hits.nginx[c] ?? [];
      const dm = median(d.map((s) => s.mbps));
      const nm = median(n.map((s) => s.mbps));
      lines.push(
        `| concurrency ${c} | ${dm.toFixed(0)} (${median(d.map((s) => s.cpu)).toFixed(2)}) | ` +
          `${nm.toFixed(0)} (${median(n.map((s) => s.cpu)).toFixed(2)}) | ${(dm / nm).toFixed(2)}x |`,
      );
    }
    json.hits = hits;

    // --- 3b. peak RSS, 16 concurrent hits (the server is warm already) ------------------------
    const warmRss = await batch(drp, blob, 16);
    await drp.close();
    await nginx.close();

    // --- 2. cold fetch vs direct -----------------------------------------------------------------
    const direct = directSystem(env.upstream);
    const cold: number[] = [];
    const straight: number[] = [];
    for (let run = 1; run <= runs + 1; run += 1) {
      const fresh = await startBlobServer(env.h, env.upstream);
      const d = await curlBatch(1, direct.curl(blob.path));
      const m = await curlBatch(1, fresh.curl(blob.path));
      await fresh.close();
      straight.push(d.wallSeconds);
      cold.push(m.wallSeconds);
      env.log(
        `cold run ${run}: direct ${d.wallSeconds.toFixed(2)} s, through drp ${m.wallSeconds.toFixed(2)} s`,
      );
    }
    lines.push('');
    lines.push('| cold fetch, 200 MB | direct s | through drp s | drp / direct |');
    lines.push('| --- | --- | --- | --- |');
    lines.push(
      `| concurrency 1 | ${median(straight).toFixed(2)} | ${median(cold).toFixed(2)} | ` +
        `${(median(cold) / median(straight)).toFixed(2)}x |`,
    );
    json.cold = { direct: straight, drp: cold };

    // --- 3a. peak RSS, 16 concurrent cold downloads (one shared fill) ------------------------
    const fresh = await startBlobServer(env.h, env.upstream);
    const coldRss = await batch(fresh, blob, 16);
    const stats = await fresh.stats();
    await fresh.close();
    lines.push('');
    lines.push('| peak RSS of the drp process, 16 x 200 MB | MB | upstream fills |');
    lines.push('| --- | --- | --- |');
    lines.push(`| 16 concurrent cold (one shared fill) | ${coldRss.peakRssMB.toFixed(0)} | ${stats.fills} |`);
    lines.push(`| 16 concurrent hits | ${warmRss.peakRssMB.toFixed(0)} | 0 |`);
    json.rss = { cold: coldRss, warm: warmRss, fills: stats.fills };
  } finally {
    await env.close();
  }
  const load = loadavg().map((x) => x.toFixed(1));
  lines.push('');
  lines.push(`load average at the end: ${load.join(' / ')} on ${cpus().length} cores`);
  const table = lines.join('\n');
  process.stdout.write(`\n${table}\n`);
  const dir = join(REPO_ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `blobs-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify({ ...json, table }, null, 2)}\n`);
  process.stdout.write(`\nJSON: ${file}\n`);
}

await main();
