// drp-server started the way users start it: `node packages/server/bin/drp-server.js` as a
// separate process, configured only by environment variables, its JSON access log read from
// stdout. PORT=0 makes it pick a free port; the startup line says which.
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import { join } from 'node:path';
import type { Daemon, Harness } from '../../harness/index.ts';

export const ROOT = new URL('../../..', import.meta.url).pathname;
export const DRP_BIN = join(ROOT, 'packages/server/bin/drp-server.js');

/** One JSON line of the daemon's stdout (`type`: startup, request, tunnel, shutdown, ...). */
export interface LogLine {
  type: string;
  [field: string]: unknown;
}

/** A `type: request` access-log line (the original's field names). */
export interface RequestLine extends LogLine {
  upstream_cache_status: string;
  request_type: string;
  method: string;
  host: string;
  uri: string;
  status: number;
  bytes_sent: number;
}

export interface RequestQuery {
  method?: string;
  status?: number;
  /** `registry.test:5000`, or a name alone for port 443 */
  host?: string;
  /** request_type, e.g. blob-by-digest, manifest-default */
  type?: string;
  /** upstream_cache_status, e.g. HIT, MISS */
  cache?: string;
  /** Matched against `uri`. */
  uri?: string | RegExp;
}

export interface Drp {
  readonly daemon: Daemon;
  readonly pid: number;
  readonly port: number;
  /** http://127.0.0.1:PORT — the value for HTTPS_PROXY */
  readonly url: string;
  /** The startup line. */
  readonly startup: LogLine;
  /** Every JSON line printed on stdout so far (appended live). */
  readonly lines: LogLine[];
  /** The proxy's CA as fetched from GET /ca.crt. */
  readonly caPem: string;
  /** A directory holding only that ca.crt (skopeo --src-cert-dir, podman --cert-dir). */
  readonly certDir: string;
  /** The same CA as a file path. */
  readonly caFile: string;
  /** Index into `lines` to pass as `since` (lines printed after this call). */
  mark(): number;
  /** Request lines matching `q`, optionally only those printed after `since` (a mark()). */
  requests(q?: RequestQuery, since?: number): RequestLine[];
  /** The daemon's recent output, for assertion messages. */
  output(): string;
  /** SIGTERM and wait for the exit code. */
  stop(): Promise<number | string>;
  /** SIGKILL (kill -9), no chance to clean up; resolves when it is gone. */
  kill9(): Promise<number | string>;
}

export interface StartDrpOptions {
  /** Environment for the daemon (merged over the test process's environment). */
  env: Record<string, string | undefined>;
  /** Timeout for the startup line (default 20 s). */
  startTimeoutMs?: number;
  /** Sees every line the daemon prints, stdout and stderr (debug output included). */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
}

/** Plain HTTP GET on the proxy's own endpoints (/ca.crt, /healthz). */
export function httpGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

function matches(line: LogLine, q: RequestQuery): boolean {
  if (line.type !== 'request') return false;
  if (q.method !== undefined && line.method !== q.method) return false;
  if (q.status !== undefined && line.status !== q.status) return false;
  // drp logs `host:port` (port 443 included for Docker Hub); `host` alone matches port 443.
  if (q.host !== undefined && line.host !== q.host && line.host !== `${q.host}:443`) return false;
  if (q.type !== undefined && line.request_type !== q.type) return false;
  if (q.cache !== undefined && line.upstream_cache_status !== q.cache) return false;
  if (q.uri !== undefined) {
    const uri = String(line.uri);
    if (typeof q.uri === 'string' ? uri !== q.uri : !q.uri.test(uri)) return false;
  }
  return true;
}

/** One line per request, for assertion messages. */
export function describe(lines: readonly LogLine[]): string {
  return lines
    .map((l) =>
      l.type === 'request'
        ? `${l.upstream_cache_status} ${l.status} ${l.method} ${l.host}${l.uri} ${l.request_type} ${l.bytes_sent}B${l.error ? ` error=${l.error}` : ''}${l.aborted ? ' aborted' : ''}`
        : JSON.stringify(l),
    )
    .join('\n');
}

/**
 * Starts drp-server with `PORT=0 BIND=127.0.0.1 LOG_FORMAT=json` plus `env`, waits for its
 * startup line, then fetches /ca.crt the way a user would.
 */
export async function startDrp(h: Harness, opts: StartDrpOptions): Promise<Drp> {
  const lines: LogLine[] = [];
  let onStartup: ((line: LogLine) => void) | undefined;
  const daemon = h.spawn(process.execPath, [DRP_BIN], {
    cwd: ROOT,
    env: {
      PORT: '0',
      BIND: '127.0.0.1',
      LOG_FORMAT: 'json',
      DEBUG: process.env.DRP_TEST_DEBUG,
      NODE_OPTIONS: undefined,
      ...opts.env,
    },
    keepLines: 400,
    onLine(line, stream) {
      opts.onLine?.(line, stream);
      if (stream !== 'stdout' || !line.startsWith('{')) return;
      let parsed: LogLine;
      try {
        parsed = JSON.parse(line) as LogLine;
      } catch {
        return;
      }
      lines.push(parsed);
      if (parsed.type === 'startup') onStartup?.(parsed);
    },
  });
  let timer: NodeJS.Timeout | undefined;
  const startup = await Promise.race([
    new Promise<LogLine>((resolve) => {
      onStartup = resolve;
    }),
    daemon.exited.then((code): never => {
      throw new Error(`drp-server exited (${code}) before starting:\n${daemon.output()}`);
    }),
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`drp-server did not start:\n${daemon.output()}`)),
        opts.startTimeoutMs ?? 20_000,
      );
    }),
  ]).finally(() => clearTimeout(timer));
  const port = Number(startup.port);
  if (!Number.isInteger(port) || port <= 0)
    throw new Error(`no port in startup line ${JSON.stringify(startup)}`);
  const url = `http://127.0.0.1:${port}`;
  const ca = await httpGet(`${url}/ca.crt`);
  if (ca.status !== 200 || !ca.body.startsWith('-----BEGIN CERTIFICATE-----')) {
    throw new Error(`GET /ca.crt: ${ca.status} ${ca.body.slice(0, 200)}`);
  }
  const certDir = h.tempDir('drp-ca-trust');
  const caFile = join(certDir, 'ca.crt');
  await writeFile(caFile, ca.body);
  return {
    daemon,
    pid: daemon.pid,
    port,
    url,
    startup,
    lines,
    caPem: ca.body,
    certDir,
    caFile,
    mark: () => lines.length,
    requests: (q = {}, since = 0) => lines.slice(since).filter((l): l is RequestLine => matches(l, q)),
    output: () => daemon.output(),
    async stop() {
      await daemon.stop(15_000);
      return daemon.exited;
    },
    async kill9() {
      process.kill(daemon.pid, 'SIGKILL');
      return daemon.exited;
    },
  };
}

/**
 * Waits until the access log has `n` lines matching `q` (lines are printed when a response
 * has finished, possibly just after the client saw the last byte).
 */
export async function waitForLines(drp: Drp, q: RequestQuery, n: number, since = 0, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (drp.requests(q, since).length < n && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 25));
  }
  return drp.requests(q, since);
}

/** Waits until nothing new was logged for `quietMs` (the daemon has finished logging). */
export async function settleLog(drp: Drp, quietMs = 150): Promise<void> {
  let last = drp.lines.length;
  let quietSince = Date.now();
  const deadline = Date.now() + 10_000;
  while (Date.now() - quietSince < quietMs && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 25));
    if (drp.lines.length !== last) {
      last = drp.lines.length;
      quietSince = Date.now();
    }
  }
}
