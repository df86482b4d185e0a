// Resource accounting for the systems under test, read from /proc: CPU seconds of a whole
// process tree (a daemon and its workers) and its peak resident set size, sampled while a
// benchmark runs. Nothing here talks to the systems themselves.
import { readdirSync, readFileSync } from 'node:fs';

/** USER_HZ: the unit of utime/stime in /proc/<pid>/stat (100 on every Linux this runs on). */
const CLK_TCK = 100;

interface StatLine {
  pid: number;
  ppid: number;
  /** utime + stime + cutime + cstime, in ticks. */
  ticks: number;
}

function readStat(pid: number): StatLine | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may hold spaces: split after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); field n is rest[n - 3].
  const num = (field: number) => Number(rest[field - 3] ?? 0);
  return { pid, ppid: num(4), ticks: num(14) + num(15) + num(16) + num(17) };
}

/** The pids of `root` and all its descendants that are alive now. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = readStat(Number(name));
    if (!s) continue;
    const list = children.get(s.ppid);
    if (list) list.push(s.pid);
    else children.set(s.ppid, [s.pid]);
  }
  const out: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    out.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return out;
}

/** CPU seconds (user + system, reaped children included) used so far by the tree under `root`. */
export function cpuSeconds(root: number): number {
  let ticks = 0;
  for (const pid of processTree(root)) ticks += readStat(pid)?.ticks ?? 0;
  return ticks / CLK_TCK;
}

function rssKb(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Current resident set size of the whole tree, in MB (10^6 bytes). */
export function rssMB(root: number): number {
  let kb = 0;
  for (const pid of processTree(root)) kb += rssKb(pid);
  return (kb * 1024) / 1e6;
}

export interface Usage {
  /** CPU seconds the tree used during the measured span. */
  cpuSeconds: number;
  /** Highest sampled RSS of the tree during the span, MB. */
  peakRssMB: number;
}

/**
 * Measures `fn` against the process tree under `root`: CPU seconds used, and peak RSS sampled
 * every `intervalMs` (the tree's membership is re-read every 10 samples).
 */
export async function measure<T>(
  root: number,
  fn: () => Promise<T>,
  intervalMs = 20,
): Promise<{ result: T; usage: Usage }> {
  let pids = processTree(root);
  let peakKb = 0;
  let n = 0;
  const sample = () => {
    if (n++ % 10 === 0) pids = processTree(root);
    let kb = 0;
    for (const pid of pids) kb += rssKb(pid);
    if (kb > peakKb) peakKb = kb;
  };
  const cpuBefore = cpuSeconds(root);
  sample();
  const timer = setInterval(sample, intervalMs);
  try {
    const result = await fn();
    sample();
    return {
      result,
      usage: { cpuSeconds: cpuSeconds(root) - cpuBefore, peakRssMB: (peakKb * 1024) / 1e6 },
    };
  } finally {
    clearInterval(timer);
  }
}
