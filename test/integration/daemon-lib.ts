// Helpers for the daemon tests: drp-server started as a separate process, the way users start
// it, with its JSON log lines collected; small HTTP/CONNECT clients.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import type { Daemon, Harness, Registry } from '../harness/index.ts';

export const ROOT = new URL('../..', import.meta.url).pathname;
export const BIN = join(ROOT, 'packages/server/bin/drp-server.js');

export interface LogLine {
  type: string;
  [field: string]: unknown;
}

export interface RunningDaemon {
  daemon: Daemon;
  port: number;
  /** http://127.0.0.1:PORT */
  url: string;
  /** Every JSON line the daemon printed on stdout so far. */
  lines: LogLine[];
  /** Every line the daemon printed on stdout so far, JSON or not. */
  stdout: string[];
  /** A directory holding only the daemon's ca.crt (for skopeo --src-cert-dir). */
  certDir: string;
  caPem: string;
  requests(filter?: Partial<Record<string, unknown>>): LogLine[];
}

/** Starts drp-server (`npx drp-server` or `node bin/drp-server.js`) and waits for its startup line. */
export async function startDaemon(
  h: Harness,
  env: Record<string, string>,
  opts: { npx?: boolean } = {},
): Promise<RunningDaemon> {
  const lines: LogLine[] = [];
  const stdout: string[] = [];
  let onStartup: ((line: LogLine) => void) | undefined;
  const [cmd, args] = opts.npx ? ['npx', ['--no-install', 'drp-server']] : [process.execPath, [BIN]];
  const daemon = h.spawn(cmd, args, {
    cwd: ROOT,
    env: {
      PORT: '0',
      BIND: '127.0.0.1',
      LOG_FORMAT: 'json',
      DEBUG: process.env.DRP_TEST_DEBUG,
      ...env,
    } as Record<string, string | undefined>,
    onLine(line, stream) {
      if (stream === 'stdout') stdout.push(line);
      if (stream !== 'stdout' || !line.startsWith('{')) return;
      const parsed = JSON.parse(line) as LogLine;
      lines.push(parsed);
      if (parsed.type === 'startup') onStartup?.(parsed);
    },
  });
  const startup = await Promise.race([
    new Promise<LogLine>((resolve) => {
      onStartup = resolve;
    }),
    daemon.exited.then((code) => {
      throw new Error(`drp-server exited (${code}) before starting:\n${daemon.output()}`);
    }),
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`drp-server did not start:\n${daemon.output()}`)), 20_000).unref(),
    ),
  ]);
  const port = Number(startup.port);
  const url = `http://127.0.0.1:${port}`;
  const caPem = (await get(`${url}/ca.crt`)).body;
  const certDir = h.tempDir('drp-ca');
  await writeFile(join(certDir, 'ca.crt'), caPem);
  return {
    daemon,
    port,
    url,
    lines,
    stdout,
    certDir,
    caPem,
    requests: (filter = {}) =>
      lines.filter((l) => l.type === 'request' && Object.entries(filter).every(([k, v]) => l[k] === v)),
  };
}

export function get(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers, agent: false }, (res) => {
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

/** Opens CONNECT `hostPort` through the proxy and a TLS session over it (SNI = the host). */
export async function tlsVia(proxyPort: number, hostPort: string, trust: string): Promise<tls.TLSSocket> {
  const req = http.request({
    host: '127.0.0.1',
    port: proxyPort,
    method: 'CONNECT',
    path: hostPort,
    agent: false,
  });
  req.end();
  const [res, socket] = (await once(req, 'connect')) as [http.IncomingMessage, net.Socket];
  assert.equal(res.statusCode, 200, `CONNECT ${hostPort}`);
  const servername = hostPort.replace(/:\d+$/, '');
  const secure = tls.connect({ socket, servername, ca: trust });
  await once(secure, 'secureConnect');
  return secure;
}

/** Opens a CONNECT tunnel through the proxy and returns the certificate the far end presents. */
export async function certificateVia(
  proxyPort: number,
  hostPort: string,
  trust: string,
): Promise<tls.PeerCertificate> {
  const secure = await tlsVia(proxyPort, hostPort, trust);
  const cert = secure.getPeerCertificate();
  secure.destroy();
  return cert;
}

/** True when a connection from `localAddress` is closed without an answer to a CONNECT. */
export async function refused(port: number, localAddress: string): Promise<boolean> {
  const socket = net.connect({ host: '127.0.0.1', port, localAddress });
  let answer = '';
  socket.on('data', (c: Buffer) => {
    answer += c.toString();
  });
  // A reset (ECONNRESET) is a refusal too; 'close' follows 'error' either way.
  socket.on('error', () => {});
  socket.write('CONNECT registry.test:443 HTTP/1.1\r\nhost: registry.test:443\r\n\r\n');
  await new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return answer === '';
}

export async function registryNamed(h: Harness, name: string): Promise<Registry & { named: string }> {
  const registry = await h.startRegistry({ names: [name] });
  return Object.assign(registry, { named: `${name}:${registry.port}` });
}
