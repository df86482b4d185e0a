// The clients the benchmarks drive: batches of concurrent curl downloads and timed skopeo
// pulls, with the client's own CPU seconds (from /usr/bin/time) beside the wall time.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { mergeEnv, run } from '../../test/harness/index.ts';

export interface CurlResult {
  status: number;
  bytes: number;
  seconds: number;
}

export interface BatchResult {
  /** From the first spawn to the last exit. */
  wallSeconds: number;
  /** Sum of bytes downloaded by every client. */
  bytes: number;
  /** Aggregate MB/s (10^6 bytes): bytes / wall. */
  mbPerSecond: number;
  /** Slowest client's own total time. */
  slowestSeconds: number;
  clients: CurlResult[];
}

/** Clears every proxy variable, so a client only uses a proxy a bench gives it explicitly. */
export const NO_PROXY_ENV = {
  HTTPS_PROXY: undefined,
  https_proxy: undefined,
  HTTP_PROXY: undefined,
  http_proxy: undefined,
  ALL_PROXY: undefined,
  all_proxy: undefined,
  NO_PROXY: undefined,
  no_proxy: undefined,
};

function curlOnce(args: string[], timeoutMs: number): Promise<CurlResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'curl',
      ['-sS', '--fail', '-o', '/dev/null', '-w', '%{http_code} %{size_download} %{time_total}', ...args],
      { env: mergeEnv(NO_PROXY_ENV), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
    });
    child.stderr.on('data', (b: Buffer) => {
      err += b.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const [status = '0', bytes = '0', seconds = '0'] = out.trim().split(' ');
      if (code !== 0) {
        reject(new Error(`curl ${args.join(' ')} exited ${code}: ${err.trim()} (${out.trim()})`));
        return;
      }
      resolve({ status: Number(status), bytes: Number(bytes), seconds: Number(seconds) });
    });
  });
}

/** Starts `n` curl processes at once on the same arguments and waits for all of them. */
export async function curlBatch(n: number, args: string[], timeoutMs = 180_000): Promise<BatchResult> {
  const started = performance.now();
  const clients = await Promise.all(Array.from({ length: n }, () => curlOnce(args, timeoutMs)));
  const wallSeconds = (performance.now() - started) / 1000;
  const bytes = clients.reduce((a, c) => a + c.bytes, 0);
  return {
    wallSeconds,
    bytes,
    mbPerSecond: bytes / 1e6 / wallSeconds,
    slowestSeconds: Math.max(...clients.map((c) => c.seconds)),
    clients,
  };
}

export interface SkopeoTiming {
  wallSeconds: number;
  /** skopeo's own user + system CPU seconds. */
  clientCpuSeconds: number;
}

/**
 * `skopeo copy docker://<ref> dir:<tmp>` timed by /usr/bin/time; the copy goes to a fresh
 * directory under `scratch` (tmpfs is best) that is removed afterwards.
 */
export async function timedSkopeoPull(
  src: { ref: string; certDir: string; env: Record<string, string | undefined> },
  scratch: string,
  timeoutMs = 300_000,
): Promise<SkopeoTiming> {
  const dir = mkdtempSync(join(scratch, 'pull-'));
  const timeFile = join(dir, 'time.txt');
  const out = join(dir, 'image');
  try {
    await run(
      '/usr/bin/time',
      [
        '-f',
        '%e %U %S',
        '-o',
        timeFile,
        'skopeo',
        '--insecure-policy',
        'copy',
        '--quiet',
        '--src-no-creds',
        '--src-cert-dir',
        src.certDir,
        `docker://${src.ref}`,
        `dir:${out}`,
      ],
      { env: { ...NO_PROXY_ENV, ...src.env }, timeoutMs },
    );
    const [e = 'NaN', u = 'NaN', s = 'NaN'] = readFileSync(timeFile, 'utf8').trim().split(/\s+/).slice(-3);
    return { wallSeconds: Number(e), clientCpuSeconds: Number(u) + Number(s) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
