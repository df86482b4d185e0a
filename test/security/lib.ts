// Small raw clients for the security tests: a CONNECT whose whole answer is read, and plain
// requests with chosen headers. Everything talks to 127.0.0.1 only.
import http from 'node:http';
import net from 'node:net';
import type { LogLine, RunningDaemon } from '../integration/daemon-lib.ts';

/** The daemon's lines of `type`, once at least `n` arrived (stdout reaches the test a bit later). */
export async function linesOf(
  drp: RunningDaemon,
  type: string,
  n: number,
  timeoutMs = 5000,
): Promise<LogLine[]> {
  const deadline = Date.now() + timeoutMs;
  while (drp.lines.filter((l) => l.type === type).length < n && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 25));
  }
  return drp.lines.filter((l) => l.type === type);
}

/** Sends `CONNECT target` with extra header lines; resolves with the answer's head, once the proxy answered. */
export function rawConnect(
  proxyPort: number,
  target: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; head: string; closed: Promise<void>; socket: net.Socket }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port: proxyPort });
    const extra = Object.entries(headers)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('');
    socket.write(`CONNECT ${target} HTTP/1.1\r\nhost: ${target}\r\n${extra}\r\n`);
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    let data = '';
    socket.on('error', () => {});
    const onData = (chunk: Buffer) => {
      data += chunk.toString('latin1');
      const end = data.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      const head = data.slice(0, end);
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), head, closed, socket });
    };
    socket.on('data', onData);
    closed.then(() => {
      if (!data.includes('\r\n\r\n')) reject(new Error(`closed without an answer: ${JSON.stringify(data)}`));
    });
  });
}

/** One request to the proxy port (origin- or absolute-form `path`). */
export function request(
  proxyPort: number,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: proxyPort, path, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

export const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

/** A TCP listener on 127.0.0.1 that counts connections (what a refused destination must not see). */
export async function countingListener(): Promise<{
  port: number;
  connections: () => number;
  close: () => Promise<void>;
}> {
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    connections += 1;
    sockets.add(s);
    s.on('error', () => {});
    s.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    connections: () => connections,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
