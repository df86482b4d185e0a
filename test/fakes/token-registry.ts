// A real registry (distribution 2.8, Debian's docker-registry) with token auth (`auth.token`),
// for the token-protocol tests. Like the harness's startRegistry, but the harness does not
// configure token auth; request counting from the access log works the same way.
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort, type Harness, httpsRequest, RequestCounter } from '../harness/index.ts';
import type { TokenServer } from './token-server.ts';

export interface TokenRegistry {
  port: number;
  /** `registry.test:PORT` */
  namedHostPort: string;
  hostPort: string;
  counter: RequestCounter;
  certDir: string;
  close(): Promise<void>;
}

const ACCESS_LINE = /^\S+ \S+ \S+ \[[^\]]*\] "(\S+) (\S+) [^"]*" (\d{3}) (\d+|-) /;

export async function startTokenRegistry(h: Harness, tokens: TokenServer): Promise<TokenRegistry> {
  const ca = await h.testCA();
  const dir = h.tempDir('token-registry');
  const cert = await ca.issue(['localhost', '127.0.0.1', 'registry.test']);
  const port = await freePort();
  const config = {
    version: 0.1,
    log: { level: 'info', formatter: 'json', accesslog: { disabled: false } },
    storage: { filesystem: { rootdirectory: join(dir, 'storage') }, delete: { enabled: true } },
    http: {
      addr: `127.0.0.1:${port}`,
      secret: randomBytes(16).toString('hex'),
      tls: { certificate: cert.certPath, key: cert.keyPath },
    },
    auth: {
      token: {
        realm: tokens.realm,
        service: tokens.service,
        issuer: tokens.issuer,
        rootcertbundle: tokens.rootCertBundle,
      },
    },
  };
  const configPath = join(dir, 'config.yml');
  await writeFile(configPath, JSON.stringify(config, null, 2));
  const counter = new RequestCounter();
  const daemon = h.spawn('docker-registry', ['serve', configPath], {
    env: Object.fromEntries(
      Object.keys(process.env)
        .filter((k) => k.startsWith('REGISTRY_'))
        .map((k) => [k, undefined]),
    ),
    onLine: (line, stream) => {
      if (stream !== 'stdout') return;
      const m = ACCESS_LINE.exec(line);
      if (!m) return;
      const [, method = '', path = '', status = '0', size = '0'] = m;
      counter.record({ method, path, status: Number(status), bytes: size === '-' ? 0 : Number(size) });
    },
  });
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      const res = await httpsRequest(`https://127.0.0.1:${port}/v2/`, { ca: ca.certPem, timeoutMs: 1000 });
      if (res.status === 401) break;
    } catch {
      // not yet
    }
    if (!daemon.running() || Date.now() > deadline) {
      throw new Error(`token registry did not start:\n${daemon.output()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  await counter.settle(150);
  counter.reset();
  return {
    port,
    namedHostPort: `registry.test:${port}`,
    hostPort: `127.0.0.1:${port}`,
    counter,
    certDir: ca.certDir,
    close: () => daemon.stop(),
  };
}
