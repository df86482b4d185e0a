// A real squid (Debian) on loopback as a corporate proxy: its own config, pid and logs in a
// harness temp dir, CONNECT allowed only to the given ports (squid's default SSL_ports would
// refuse a registry on a high port), optionally Basic proxy authentication (basic_ncsa_auth
// with an htpasswd file). DNS is pointed at 127.0.0.1 so squid never asks anything off-machine.
import { chmod, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import type { Daemon, Harness } from '../../harness/index.ts';

export interface Squid {
  readonly daemon: Daemon;
  readonly port: number;
  /** `http://127.0.0.1:PORT` (no credentials). */
  readonly url: string;
  /** Lines of squid's access log so far (`squid` format: ... METHOD URL USER ...). */
  accessLog(): Promise<string[]>;
  /** CONNECT targets in the access log, in order. */
  connects(): Promise<string[]>;
  stop(): Promise<void>;
}

export interface SquidOptions {
  /** Ports CONNECT may reach. */
  connectPorts: readonly number[];
  /** Require Basic proxy authentication with these credentials. */
  auth?: { username: string; password: string };
}

const NCSA = '/usr/lib/squid/basic_ncsa_auth';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export async function startSquid(h: Harness, options: SquidOptions): Promise<Squid> {
  const dir = h.tempDir('squid');
  // As root squid drops to its `proxy` user, which must be able to write its logs here.
  if (process.getuid?.() === 0) {
    await chmod(h.dir, 0o711);
    await chmod(dir, 0o777);
  }
  const accessLog = join(dir, 'access.log');
  const lines = (port: number) => [
    `http_port 127.0.0.1:${port}`,
    `pid_filename ${join(dir, 'squid.pid')}`,
    `access_log stdio:${accessLog} squid`,
    `cache_log ${join(dir, 'cache.log')}`,
    'cache_store_log none',
    'cache deny all',
    `coredump_dir ${dir}`,
    'netdb_filename none',
    'pinger_enable off',
    'icp_port 0',
    'dns_nameservers 127.0.0.1',
    'shutdown_lifetime 0 seconds',
    `acl Safe_ports port ${options.connectPorts.join(' ')}`,
    'acl CONNECT method CONNECT',
    'acl loopback src 127.0.0.1/32 ::1',
    'http_access deny !Safe_ports',
    'http_access deny CONNECT !Safe_ports',
    ...(options.auth
      ? [
          `auth_param basic program ${NCSA} ${join(dir, 'htpasswd')}`,
          'auth_param basic realm drp-test',
          'acl authenticated proxy_auth REQUIRED',
          'http_access deny !authenticated',
        ]
      : []),
    'http_access allow loopback',
    'http_access deny all',
    '',
  ];
  if (options.auth) {
    await h.run('htpasswd', [
      '-b',
      '-c',
      join(dir, 'htpasswd'),
      options.auth.username,
      options.auth.password,
    ]);
    await chmod(join(dir, 'htpasswd'), 0o644);
  }
  for (let attempt = 0; ; attempt += 1) {
    const port = await freePort();
    const config = join(dir, 'squid.conf');
    await writeFile(config, lines(port).join('\n'));
    const daemon = h.spawn('squid', ['-N', '-f', config]);
    const deadline = Date.now() + 15_000;
    let up = false;
    while (Date.now() < deadline && daemon.running()) {
      if (await listening(port)) {
        up = true;
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    if (!up) {
      await daemon.stop();
      const log = await readFile(join(dir, 'cache.log'), 'utf8').catch(() => '');
      if (attempt < 2) continue; // the port was taken meanwhile
      throw new Error(`squid did not start:\n${daemon.output()}\n${log.slice(-2000)}`);
    }
    const read = async () =>
      (await readFile(accessLog, 'utf8').catch(() => '')).split('\n').filter((l) => l.trim() !== '');
    return {
      daemon,
      port,
      url: `http://127.0.0.1:${port}`,
      accessLog: read,
      async connects() {
        // squid format: time elapsed client code/status bytes method URL user hierarchy type
        return (await read())
          .map((l) => l.trim().split(/\s+/))
          .filter((f) => f[5] === 'CONNECT')
          .map((f) => f[6] ?? '');
      },
      stop: () => daemon.stop(),
    };
  }
}
