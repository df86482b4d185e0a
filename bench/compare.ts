// Side by side: the JSON results of several runs (of bench/run.ts or of bench/stages/run.ts),
// one column per run, e.g. the same benches on Node 20 and Node 24 (bench/runtimes.sh).
//
//   node --import tsx bench/compare.ts LABEL=FILE LABEL=FILE ...
import { readFileSync } from 'node:fs';

interface StagesResult {
  node: string;
  medians: Record<string, { cpuSecondsPerGB: number; mainCpuSecondsPerGB: number; wallSeconds: number }>;
}
interface BenchResult {
  machine: Record<string, string | number>;
  figures: { id: string; label: string; unit: string; better: string; median: Record<string, number> }[];
}

const fmt = (n: number | undefined) =>
  n === undefined || !Number.isFinite(n)
    ? '—'
    : n.toFixed(Math.abs(n) >= 100 ? 0 : Math.abs(n) >= 10 ? 1 : 2);

const runs = process.argv.slice(2).map((arg) => {
  const eq = arg.indexOf('=');
  if (eq <= 0) throw new Error(`expected LABEL=FILE, got ${JSON.stringify(arg)}`);
  return { label: arg.slice(0, eq), data: JSON.parse(readFileSync(arg.slice(eq + 1), 'utf8')) as unknown };
});
// With two runs of a kind (two stage results, or two bench results), a column of their ratio.
const ratioColumn = (labels: string[]) => ({
  head: labels.length === 2 ? ` | ${labels[1]} / ${labels[0]}` : '',
  cell: (a: number | undefined, b: number | undefined) =>
    labels.length === 2 ? ` | ${a && b ? `${(b / a).toFixed(2)}×` : '—'}` : '',
});

const stages = runs.filter((r) => 'medians' in (r.data as object)) as { label: string; data: StagesResult }[];
if (stages.length > 0) {
  const names = [...new Set(stages.flatMap((r) => Object.keys(r.data.medians)))];
  const { head: ratioHead, cell: ratio } = ratioColumn(stages.map((r) => r.label));
  const out = [
    `Stages (${stages.map((r) => `${r.label}: Node ${r.data.node}`).join(', ')}): CPU s/GB (wall s per run)`,
    '',
    `| stage | ${stages.map((r) => r.label).join(' | ')}${ratioHead} |`,
    `| --- | ${stages.map(() => '---').join(' | ')}${ratioHead ? ' | ---' : ''} |`,
  ];
  for (const n of names) {
    const m = stages.map((r) => r.data.medians[n]);
    out.push(
      `| ${n} | ${m.map((x) => (x ? `${fmt(x.cpuSecondsPerGB)} (${fmt(x.wallSeconds)})` : '—')).join(' | ')}` +
        `${ratio(m[0]?.cpuSecondsPerGB, m[1]?.cpuSecondsPerGB)} |`,
    );
  }
  process.stdout.write(`${out.join('\n')}\n\n`);
}

const benches = runs.filter((r) => 'figures' in (r.data as object)) as { label: string; data: BenchResult }[];
if (benches.length > 0) {
  const ids = [...new Set(benches.flatMap((r) => r.data.figures.map((f) => f.id)))];
  const { head: ratioHead, cell: ratio } = ratioColumn(benches.map((r) => r.label));
  const out = [
    `Benches, drp's medians (${benches.map((r) => `${r.label}: drp-server on ${r.data.machine.drpNode ?? r.data.machine.node}`).join(', ')})`,
    '',
    `| figure | ${benches.map((r) => r.label).join(' | ')}${ratioHead} |`,
    `| --- | ${benches.map(() => '---').join(' | ')}${ratioHead ? ' | ---' : ''} |`,
  ];
  for (const id of ids) {
    const f = benches.map((r) => r.data.figures.find((x) => x.id === id));
    const any = f.find(Boolean);
    if (!any) continue;
    const v = f.map((x) => x?.median.drp);
    out.push(
      `| ${any.label} (${any.unit}, ${any.better} is better) | ${v.map(fmt).join(' | ')}${ratio(v[0], v[1])} |`,
    );
  }
  process.stdout.write(`${out.join('\n')}\n`);
}
