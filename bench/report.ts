// Results of a bench run: figures with their samples per system, medians, ratios of drp to
// each reference, targets and verdicts; rendered as a markdown table and written as JSON.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import type { SystemName } from './references/systems.ts';

export const REFERENCES: readonly SystemName[] = ['nginx', 'distribution', 'direct'];
const COLUMNS: readonly SystemName[] = ['drp', ...REFERENCES];

/**
 * A target on a figure: on drp's median against a reference's (`kind: 'ratio'`, drp/reference),
 * or on drp's median itself (`kind: 'absolute'`).
 */
export interface Target {
  kind: 'ratio' | 'absolute';
  reference?: SystemName;
  max?: number;
  min?: number;
  equals?: number;
  below?: number;
}

/** Samples per system, one per run. */
export type Samples = Partial<Record<SystemName, number[]>>;

/** Appends one sample for `system`. */
export function addSample(samples: Samples, system: SystemName, value: number): void {
  const list = samples[system];
  if (list) list.push(value);
  else samples[system] = [value];
}

export interface Figure {
  /** Stable id, e.g. 'throughput.c1'. */
  id: string;
  section: string;
  label: string;
  unit: string;
  better: 'higher' | 'lower';
  samples: Samples;
  targets?: Target[];
  note?: string;
}

export interface FigureResult extends Figure {
  median: Partial<Record<SystemName, number>>;
  /** drp's median / the reference's median. */
  ratio: Partial<Record<SystemName, number>>;
  /** `measured` is false when a run left out a system the target needs (BENCH_SYSTEMS). */
  verdicts: { target: string; met: boolean; measured: boolean; value: number }[];
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function describe(t: Target): string {
  const bound =
    (t.equals !== undefined && `= ${t.equals}`) ||
    ('below' in t && t.below !== undefined && `< ${t.below}`) ||
    (t.max !== undefined && `≤ ${t.max}`) ||
    (t.min !== undefined && `≥ ${t.min}`) ||
    '?';
  return t.kind === 'ratio' ? `drp/${t.reference ?? '?'} ${bound.replace(/(\d)$/, '$1×')}` : `drp ${bound}`;
}

export function evaluate(f: Figure): FigureResult {
  const med: Partial<Record<SystemName, number>> = {};
  for (const [sys, xs] of Object.entries(f.samples) as [SystemName, number[]][]) med[sys] = median(xs);
  const ratio: Partial<Record<SystemName, number>> = {};
  const drp = med.drp;
  for (const ref of REFERENCES) {
    const r = med[ref];
    if (drp !== undefined && r !== undefined && r !== 0) ratio[ref] = drp / r;
  }
  const verdicts = (f.targets ?? []).map((t) => {
    const value = t.kind === 'ratio' ? (ratio[t.reference ?? 'direct'] ?? Number.NaN) : (drp ?? Number.NaN);
    const measured = Number.isFinite(value);
    let met = measured;
    if (t.max !== undefined) met &&= value <= t.max;
    if (t.min !== undefined) met &&= value >= t.min;
    if (t.equals !== undefined) met &&= value === t.equals;
    if (t.below !== undefined) met &&= value < t.below;
    return { target: describe(t), met, measured, value };
  });
  return { ...f, median: med, ratio, verdicts };
}

function fmt(n: number | undefined, unit = ''): string {
  if (n === undefined || Number.isNaN(n)) return '—';
  const digits = Math.abs(n) >= 100 ? 0 : Math.abs(n) >= 10 ? 1 : Math.abs(n) >= 1 ? 2 : 3;
  return `${n.toFixed(digits)}${unit}`;
}

export function markdownTable(results: readonly FigureResult[]): string {
  const used = COLUMNS.filter((c) => results.some((r) => r.samples[c]));
  const refs = REFERENCES.filter((c) => results.some((r) => r.ratio[c] !== undefined));
  const head = ['figure', ...used, ...refs.map((r) => `drp/${r}`), 'target', 'met'];
  const lines = [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`];
  let section = '';
  for (const r of results) {
    if (r.section !== section) {
      section = r.section;
      lines.push(
        `| **${section}** | ${head
          .slice(1)
          .map(() => '')
          .join(' | ')} |`,
      );
    }
    const cells = [
      `${r.label} (${r.unit}, ${r.better} is better)`,
      ...used.map((c) => fmt(r.median[c])),
      ...refs.map((c) => (r.ratio[c] === undefined ? '' : `${fmt(r.ratio[c])}×`)),
      r.verdicts.map((v) => v.target).join('; '),
      r.verdicts.map((v) => (!v.measured ? 'not measured' : v.met ? 'yes' : '**no**')).join('; '),
    ];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

function version(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n')[0] || 'unknown';
}

export function machine(): Record<string, string | number> {
  const cpu = cpus();
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    // not a checkout
  }
  let dirty = '';
  try {
    dirty = execFileSync('git', ['status', '--porcelain', '--', 'packages'], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map((l) => l.slice(3))
      .join(' ');
  } catch {
    // not a checkout
  }
  return {
    cpu: cpu[0]?.model ?? 'unknown',
    cores: cpu.length,
    memoryGB: Math.round(totalmem() / 1e9),
    kernel: release(),
    node: process.version,
    nginx: version('nginx', ['-v']).replace(/^nginx version: /, ''),
    distribution: version('docker-registry', ['--version']),
    skopeo: version('skopeo', ['--version']),
    curl: version('curl', ['--version']),
    drpCommit: dirty ? `${commit} + uncommitted changes (${dirty})` : commit,
  };
}

export function writeResults(dir: string, payload: Record<string, unknown>): string {
  mkdirSync(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const file = join(dir, `bench-${stamp}.json`);
  const text = `${JSON.stringify(payload, null, 2)}\n`;
  writeFileSync(file, text);
  writeFileSync(join(dir, 'latest.json'), text);
  return file;
}
