// `pnpm bench`: drp against the engines users would otherwise pick, on loopback, same data,
// same run. Prints a markdown table of medians with drp/reference ratios and the targets of
// issues 8 and 13, and writes the whole result (samples included) as JSON to bench/results/.
//
//   node --import tsx bench/run.ts [--node PATH] [idle|throughput|misses|pull|manifests|wan|scale ...]
//                          (default: all); --node or BENCH_NODE=PATH: drp-server runs on
//                          that Node binary (the bench itself stays on the one that started it)
//   BENCH_QUICK=1          fewer runs per figure
//   BENCH_SYSTEMS=a,b      only these systems (drp, nginx, distribution, direct)
//   BENCH_WAN_MBPS, BENCH_WAN_LATENCY_MS   the `wan` bench's front (default 40 MB/s, 30 ms)
//   BENCH_OUT=FILE         also write the JSON result here
//   DRP_BENCH_NODE_ARGS    extra node flags for drp-server (e.g. --cpu-prof --cpu-prof-dir=DIR)
import { copyFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { idleBench } from './idle.ts';
import { pullBench } from './pull.ts';
import { createBenchEnv } from './references/env.ts';
import { benchNodeVersion, takeNodeArg } from './references/node.ts';
import { REPO_ROOT } from './references/systems.ts';
import { evaluate, type Figure, machine, markdownTable, writeResults } from './report.ts';
import { scaleBench } from './scale.ts';
import { throughputBench } from './throughput.ts';
import { manifestBench } from './throughput-manifests.ts';
import { missesBench } from './throughput-misses.ts';
import { wanBench } from './wan.ts';

const BENCHES = {
  idle: idleBench,
  throughput: throughputBench,
  misses: missesBench,
  pull: pullBench,
  manifests: manifestBench,
  wan: wanBench,
  scale: scaleBench,
} as const;
type BenchName = keyof typeof BENCHES;

function selected(argv: string[]): BenchName[] {
  if (argv.length === 0) return Object.keys(BENCHES) as BenchName[];
  for (const a of argv) {
    if (!(a in BENCHES)) {
      throw new Error(`unknown bench ${JSON.stringify(a)}; choose from ${Object.keys(BENCHES).join(', ')}`);
    }
  }
  return argv as BenchName[];
}

async function main(): Promise<void> {
  const names = selected(takeNodeArg(process.argv.slice(2)));
  const started = Date.now();
  const loadBefore = loadavg();
  const env = await createBenchEnv();
  const figures: Figure[] = [];
  const failures: { bench: string; error: string }[] = [];
  try {
    for (const name of names) {
      env.log(`== ${name}`);
      try {
        figures.push(...(await BENCHES[name](env)));
      } catch (e) {
        const error = e instanceof Error ? (e.stack ?? e.message) : String(e);
        env.log(`${name} FAILED: ${error}`);
        failures.push({ bench: name, error });
      }
    }
  } finally {
    await env.close();
  }
  const results = figures.map(evaluate);
  const table = markdownTable(results);
  const info: Record<string, string | number> = { ...machine(), drpNode: benchNodeVersion() };
  const minutes = (Date.now() - started) / 60_000;
  const loadAfter = loadavg();
  const load = `load average ${loadBefore.map((l) => l.toFixed(1)).join(' ')} before, ${loadAfter.map((l) => l.toFixed(1)).join(' ')} after`;
  const header = `drp benchmarks — ${new Date().toISOString()} — ${info.cores} × ${info.cpu}, ${info.memoryGB} GB, Linux ${info.kernel}, Node ${info.node} (drp-server on ${info.drpNode}), ${info.nginx}, ${info.distribution}, ${info.skopeo}, drp ${info.drpCommit} (${minutes.toFixed(1)} min)`;
  process.stdout.write(`\n${header}\n${load}\n\n${table}\n\n`);
  if (Math.max(...loadBefore, ...loadAfter) > Number(info.cores)) {
    process.stdout.write(
      `WARNING: the machine was busy with other work (${load} on ${info.cores} cores): absolute figures are low and noisy; ratios are less affected, CPU seconds least.\n\n`,
    );
  }
  for (const r of results) if (r.note) process.stdout.write(`- ${r.id}: ${r.note}\n`);
  const file = writeResults(join(REPO_ROOT, 'bench', 'results'), {
    startedAt: new Date(started).toISOString(),
    minutes,
    machine: info,
    loadavg: { before: loadBefore, after: loadAfter },
    benches: names,
    failures,
    figures: results,
  });
  if (process.env.BENCH_OUT) copyFileSync(file, process.env.BENCH_OUT);
  process.stdout.write(`\nJSON: ${file}\n`);
  if (failures.length > 0) {
    process.stdout.write(`\nFAILED: ${failures.map((f) => f.bench).join(', ')}\n`);
    process.exitCode = 1;
  }
}

await main();
