// "Know the floor": each stage of a cold fill measured alone, on this machine, in a fresh Node
// process per run (on the Node under test), alternating stage by stage so a change in the
// machine's load falls on all of them. Prints a markdown table of medians (CPU seconds per GB
// and wall) and writes every sample as JSON to bench/results/stages-*.json.
//
//   node --import tsx bench/stages/run.ts [--node PATH] [--runs N] [--size MB] [--only a,b]
//   BENCH_QUICK=1 (3 runs), BENCH_NODE=PATH (as --node), BENCH_OUT=FILE (JSON also written here)
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { createHarness } from '../../test/harness/index.ts';
import { benchNode, benchNodeVersion, takeNodeArg } from '../references/node.ts';
import { REPO_ROOT } from '../references/systems.ts';
import { machine, median } from '../report.ts';
import { KiB, MiB, type StageResult } from './measure.ts';
import type { StageSpec } from './stage.ts';
import { floorRows, stageTable } from './table.ts';

function option(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
}

const argv = takeNodeArg(process.argv.slice(2));
const runs = Number(option(argv, 'runs') ?? (process.env.BENCH_QUICK === '1' ? 3 : 5));
const bytes = Number(option(argv, 'size') ?? 200) * 1e6;
const only = option(argv, 'only')?.split(',');
const node = benchNode();
const log = (m: string) => process.stderr.write(`[stages] ${m}\n`);

const h = createHarness();
try {
  const ca = await h.testCA();
  const cert = await ca.issue(['localhost', '127.0.0.1']);
  const tmp = h.tempDir('stages');
  // The spool goes where a default cache would live (the OS temp dir's file system).
  const spoolDir = h.tempDir('spool');
  const blobFile = join(tmp, 'blob');
  execFileSync('sh', ['-c', `head -c ${bytes} /dev/urandom > '${blobFile}'`]);

  let port = 0;
  const source = h.spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'bench/stages/source.ts')], {
    cwd: REPO_ROOT,
    env: { CERT: cert.certPath, KEY: cert.keyPath },
    onLine: (line) => {
      const m = /^listening (\d+)/.exec(line);
      if (m) port = Number(m[1]);
    },
  });
  for (let i = 0; i < 200 && port === 0; i++) await new Promise((r) => setTimeout(r, 50));
  if (port === 0) throw new Error(`stage source server did not start:\n${source.output()}`);
  const url = `https://127.0.0.1:${port}`;

  const all: StageSpec[] = [
    { kind: 'download-got', bytes, url, caPath: ca.certPath },
    { kind: 'download-got-response', bytes, url, caPath: ca.certPath },
    { kind: 'download-https', bytes, url, caPath: ca.certPath },
    { kind: 'sha256-main', bytes, update: 16 * KiB },
    { kind: 'sha256-main', bytes, update: MiB },
    { kind: 'sha256-worker', bytes, batch: MiB, inflight: 4 },
    { kind: 'sha256-worker', bytes, batch: 256 * KiB, inflight: 4 },
    ...([256 * KiB, MiB, 4 * MiB] as const).map(
      (batch): StageSpec => ({ kind: 'spool', bytes, dir: spoolDir, mode: 'writev', batch }),
    ),
    ...([MiB, 4 * MiB, 16 * MiB] as const).map(
      (batch): StageSpec => ({ kind: 'spool', bytes, dir: spoolDir, mode: 'write', batch }),
    ),
    ...(['buffer', 'file'] as const).map(
      (src): StageSpec => ({
        kind: 'deliver',
        bytes,
        source: src,
        file: blobFile,
        certPath: cert.certPath,
        keyPath: cert.keyPath,
        caPath: ca.certPath,
        tmp,
      }),
    ),
  ];
  const specs = all.filter((s) => !only || only.some((o) => s.kind.startsWith(o)));

  const loadBefore = loadavg();
  const nodeVersion = benchNodeVersion();
  log(`${specs.length} stages × ${runs} runs of ${bytes / 1e6} MB on Node ${nodeVersion} (${node})`);
  const samples = new Map<string, StageResult[]>();
  for (let run = 1; run <= runs; run++) {
    for (const spec of specs) {
      const out = execFileSync(
        node,
        ['--import', 'tsx', join(REPO_ROOT, 'bench/stages/stage.ts'), JSON.stringify(spec)],
        {
          cwd: REPO_ROOT,
          encoding: 'utf8',
          env: { ...process.env, HTTPS_PROXY: '', https_proxy: '' },
          maxBuffer: 1 << 20,
        },
      );
      const r = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as StageResult;
      const list = samples.get(r.stage) ?? [];
      list.push(r);
      samples.set(r.stage, list);
      log(
        `run ${run}/${runs} ${r.stage}: ${r.wallSeconds.toFixed(2)} s, ${r.cpuSeconds.toFixed(2)} CPU s` +
          ` (main ${r.mainCpuSeconds.toFixed(2)}${r.clientCpuSeconds !== undefined ? `, curl ${r.clientCpuSeconds.toFixed(2)}` : ''})`,
      );
    }
  }
  const loadAfter = loadavg();
  const load = `load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')} before, ${loadAfter.map((l) => l.toFixed(2)).join(' ')} after`;
  const info = machine();
  const header =
    `drp stage benches — ${new Date().toISOString()} — ${info.cores} × ${info.cpu}, Linux ${info.kernel}, ` +
    `Node ${nodeVersion}, ${bytes / 1e6} MB per run, medians of ${runs} runs\n${load}`;
  process.stdout.write(`\n${header}\n\n${stageTable(samples)}\n\n${floorRows(samples)}\n`);
  const payload = {
    startedAt: new Date().toISOString(),
    node: nodeVersion,
    nodePath: node,
    machine: info,
    loadavg: { before: loadBefore, after: loadAfter },
    bytes,
    runs,
    medians: Object.fromEntries(
      [...samples].map(([stage, list]) => [
        stage,
        {
          cpuSecondsPerGB: median(list.map((r) => (r.cpuSeconds * 1e9) / r.bytes)),
          mainCpuSecondsPerGB: median(list.map((r) => (r.mainCpuSeconds * 1e9) / r.bytes)),
          wallSeconds: median(list.map((r) => r.wallSeconds)),
        },
      ]),
    ),
    samples: Object.fromEntries(samples),
  };
  const dir = join(REPO_ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const text = `${JSON.stringify(payload, null, 2)}\n`;
  const file = join(dir, `stages-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, text);
  writeFileSync(join(dir, 'stages-latest.json'), text);
  if (process.env.BENCH_OUT) writeFileSync(process.env.BENCH_OUT, text);
  process.stdout.write(`\nJSON: ${file}\n`);
} finally {
  await h.close();
}
