// The stage benches' report: one row per stage (medians of CPU seconds per GB, the main
// thread's share, the client's CPU, wall time and MB/s), and the floor of a cold fill: the sum
// of the cheapest variant of each stage a fill must do, beside the sum of the variants drp's
// fill uses today (got's request with the body read from its response, 16 KiB hash updates on the main thread, writev of the chunks that
// queued during the previous write — up to 4 MiB, 1 MiB shown — and delivery from memory: a
// reader that keeps pace copies from the flight's window of recently written bytes).
import { median } from '../report.ts';
import type { StageResult } from './measure.ts';

const perGB = (seconds: number, bytes: number) => (seconds * 1e9) / bytes;

function med(list: StageResult[], f: (r: StageResult) => number | undefined): number | undefined {
  const xs = list.map(f).filter((x): x is number => x !== undefined && Number.isFinite(x));
  return xs.length ? median(xs) : undefined;
}

const fmt = (n: number | undefined, digits = 2) => (n === undefined ? '—' : n.toFixed(digits));

export function cpuPerGB(list: StageResult[] | undefined): number | undefined {
  return list ? med(list, (r) => perGB(r.cpuSeconds, r.bytes)) : undefined;
}

export function stageTable(samples: Map<string, StageResult[]>): string {
  const lines = [
    '| stage | CPU s/GB (process) | of which main thread | client CPU s/GB (curl) | wall s | MB/s | notes |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const [stage, list] of samples) {
    const wall = med(list, (r) => r.wallSeconds);
    const bytes = list[0]?.bytes ?? 0;
    const notes = Object.entries(list[0]?.info ?? {})
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    lines.push(
      `| ${stage} | ${fmt(cpuPerGB(list))} | ${fmt(med(list, (r) => perGB(r.mainCpuSeconds, r.bytes)))} | ` +
        `${fmt(med(list, (r) => (r.clientCpuSeconds === undefined ? undefined : perGB(r.clientCpuSeconds, r.bytes))))} | ` +
        `${fmt(wall)} | ${wall ? (bytes / 1e6 / wall).toFixed(0) : '—'} | ${notes} |`,
    );
  }
  return lines.join('\n');
}

interface Part {
  name: string;
  /** Stage-name prefix: the floor takes the cheapest stage with it. */
  prefix: string;
  /** The variant drp's fill uses today. */
  today: string;
}

const PARTS: readonly Part[] = [
  // Since 8bc4160 drp reads a blob's body from the response got exposes, not through got's stream.
  { name: 'upstream TLS download (got)', prefix: 'download-got', today: 'download-got-response' },
  { name: 'SHA-256', prefix: 'sha256', today: 'sha256-main-16k' },
  { name: 'spool writes', prefix: 'spool', today: 'spool-writev-1024k' },
  { name: 'TLS delivery to one client', prefix: 'deliver', today: 'deliver-buffer' },
];

export function floorRows(samples: Map<string, StageResult[]>): string {
  const lines = [
    '| part of a cold fill | floor: cheapest variant | CPU s/GB | as drp does it today | CPU s/GB |',
    '| --- | --- | --- | --- | --- |',
  ];
  let floor = 0;
  let today = 0;
  let complete = true;
  for (const part of PARTS) {
    let best: [string, number] | undefined;
    for (const [stage, list] of samples) {
      const c = cpuPerGB(list);
      if (stage.startsWith(part.prefix) && c !== undefined && (!best || c < best[1])) best = [stage, c];
    }
    const t = cpuPerGB(samples.get(part.today));
    if (!best || t === undefined) complete = false;
    floor += best?.[1] ?? 0;
    today += t ?? 0;
    lines.push(`| ${part.name} | ${best?.[0] ?? '—'} | ${fmt(best?.[1])} | ${part.today} | ${fmt(t)} |`);
  }
  lines.push(
    complete
      ? `| **sum: the floor of a cold fill** | | **${fmt(floor)}** | the same stages as drp runs them | **${fmt(today)}** |`
      : '| sum | (not every stage was run) | | | |',
  );
  return lines.join('\n');
}
