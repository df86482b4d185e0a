// haproxy (the Debian package) as the load balancer in front of drp replicas: TCP mode on
// loopback, round robin, health checks every 300 ms, one log line per closed connection naming
// the client's port and the replica that served it.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort, type Harness } from '../harness/index.ts';
import { until } from './lib.ts';

export interface Balancer {
  port: number;
  /** http://127.0.0.1:PORT: what clients use as HTTPS_PROXY. */
  url: string;
  /** The replica (`r1`, `r2`, ...) that served the connection from this client port, once closed. */
  servedBy(clientPort: number): string | undefined;
}

export async function startHaproxy(h: Harness, replicaPorts: readonly number[]): Promise<Balancer> {
  const port = await freePort();
  const config = [
    'global',
    '  maxconn 512',
    '  log stdout format raw local0',
    'defaults',
    '  mode tcp',
    '  log global',
    '  option tcplog',
    '  timeout connect 5s',
    '  timeout client 300s',
    '  timeout server 300s',
    'frontend drp',
    `  bind 127.0.0.1:${port}`,
    '  default_backend replicas',
    'backend replicas',
    '  balance roundrobin',
    ...replicaPorts.map((p, i) => `  server r${i + 1} 127.0.0.1:${p} check inter 300ms fall 1 rise 2`),
    '',
  ].join('\n');
  const file = join(h.tempDir('haproxy'), 'haproxy.cfg');
  await writeFile(file, config);
  const served = new Map<number, string>();
  const daemon = h.spawn('haproxy', ['-db', '-f', file], {
    onLine(line) {
      // tcplog: "127.0.0.1:54321 [06/Dec/2026:19:50:01.123] drp replicas/r2 1/0/5003 ..."
      const match = /^\S+:(\d+) \[[^\]]+\] \S+ \S+\/(r\d+) /.exec(line);
      if (match) served.set(Number(match[1]), match[2]!);
    },
  });
  const { connect } = await import('node:net');
  await until(
    'haproxy to listen',
    () =>
      new Promise<boolean>((resolve) => {
        if (!daemon.running()) resolve(false);
        const socket = connect({ host: '127.0.0.1', port }, () => {
          socket.destroy();
          resolve(true);
        });
        socket.on('error', () => resolve(false));
      }),
    10_000,
  );
  return { port, url: `http://127.0.0.1:${port}`, servedBy: (p) => served.get(p) };
}
