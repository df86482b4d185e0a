// Helpers for the scale-out tests: a real client (curl) fetching through a proxy, a blob's
// digest checked, Prometheus text read, processes looked for.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Harness } from '../harness/index.ts';

export interface Fetched {
  status: number;
  digest: string;
  bytes: number;
  /** curl's local port: which connection it was (haproxy's log names it). */
  localPort: number;
}

let fetches = 0;

/**
 * GETs `url` with curl through `proxy` (HTTPS_PROXY style: CONNECT, TLS to the proxy's leaf),
 * trusting `caFile`; the body's sha256 is returned. A new connection every call.
 */
export async function curlVia(h: Harness, proxy: string, caFile: string, url: string): Promise<Fetched> {
  const out = join(h.dir, `curl-${process.pid}-${fetches++}.body`);
  const result = await h.run(
    'curl',
    [
      '-sS',
      '--proxy',
      proxy,
      '--cacert',
      caFile,
      '-o',
      out,
      '-w',
      '%{http_code} %{local_port}',
      '--max-time',
      '120',
      url,
    ],
    { env: { NO_PROXY: '', no_proxy: '' }, timeoutMs: 130_000, check: false },
  );
  const [status, localPort] = result.stdout.trim().split(' ');
  const body = await readFile(out).catch(() => Buffer.alloc(0));
  return {
    status: Number(status),
    localPort: Number(localPort),
    digest: `sha256:${createHash('sha256').update(body).digest('hex')}`,
    bytes: body.length,
  };
}

/** The sum of every sample of `name` (all label sets) in Prometheus text. */
export function metricSum(text: string, name: string, labels?: RegExp): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    if (labels && !labels.test(match[2] ?? '')) continue;
    sum += Number(match[3]);
  }
  return sum;
}

/** True while a process with this pid exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Polls `check` every 100 ms until it is true or `timeoutMs` passes (then throws `what`). */
export async function until(
  what: string | (() => string),
  check: () => boolean | Promise<boolean>,
  timeoutMs = 20_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end)
      throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
