// What one stage run reports, and how the stage process measures itself: CPU seconds of the
// whole process (process.cpuUsage: every thread, libuv's pool and V8's helpers included), of
// its main thread alone (/proc/self/task/<pid>/stat: what the event loop pays), and wall time.

import { randomFillSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';

export interface StageResult {
  stage: string;
  bytes: number;
  wallSeconds: number;
  /** user + system CPU of the stage process (all threads) during the stage. */
  cpuSeconds: number;
  /** user + system CPU of its main thread alone. */
  mainCpuSeconds: number;
  /** CPU of a separate client process doing the other end (curl), when there is one. */
  clientCpuSeconds?: number;
  /** Free-form facts (chunks seen, mean chunk size). */
  info?: Record<string, number | string>;
}

/** USER_HZ, the unit of /proc/<pid>/task/<tid>/stat's utime and stime. */
const CLK_TCK = 100;

function mainThreadSeconds(): number {
  try {
    const text = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[14 - 3]) + Number(rest[15 - 3])) / CLK_TCK;
  } catch {
    return Number.NaN;
  }
}

/** Runs `fn` and reports its wall time and CPU; `fn` returns how many bytes it moved. */
export async function timed(
  stage: string,
  fn: () => Promise<{ bytes: number; clientCpuSeconds?: number; info?: Record<string, number | string> }>,
): Promise<StageResult> {
  const cpu0 = process.cpuUsage();
  const main0 = mainThreadSeconds();
  const t0 = performance.now();
  const r = await fn();
  const wallSeconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return {
    stage,
    bytes: r.bytes,
    wallSeconds,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    mainCpuSeconds: mainThreadSeconds() - main0,
    ...(r.clientCpuSeconds !== undefined ? { clientCpuSeconds: r.clientCpuSeconds } : {}),
    ...(r.info ? { info: r.info } : {}),
  };
}

/** 16 MiB of random bytes: the source every stage cycles through (content does not matter to
 * SHA-256 or TLS cost, but random keeps it honest against any compression). */
export function randomSource(size = 16 * 1024 * 1024): Buffer {
  return randomFillSync(Buffer.allocUnsafeSlow(size));
}

export const KiB = 1024;
export const MiB = 1024 * 1024;

/**
 * Writes `total` bytes of `src` (cycled) to `res` in 1 MiB writes, waiting for 'drain' (or the
 * client going away) whenever a write says so, then ends it.
 */
export async function writeCycled(src: Buffer, res: ServerResponse, total: number): Promise<void> {
  let sent = 0;
  while (sent < total) {
    const off = sent % src.length;
    const n = Math.min(MiB, total - sent, src.length - off);
    sent += n;
    if (!res.write(src.subarray(off, off + n))) {
      await new Promise<void>((resolve) => {
        const done = () => {
          res.off('drain', done);
          res.off('close', done);
          resolve();
        };
        res.on('drain', done);
        res.on('close', done);
      });
      if (res.destroyed) return;
    }
  }
  res.end();
}
