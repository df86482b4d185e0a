// Runs a real registry (Debian's docker-registry, distribution 2.8.2) on 127.0.0.1 with TLS
// from the test CA, filesystem storage and optional htpasswd auth.
//
// Upstream requests are counted from the registry's own access log (gorilla's combined log
// on stdout, one line per request written after the response, every status included), so
// nothing sits between clients and the registry.
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { TestCA } from './ca.ts';
import { type PushableImage, type PushOptions, type PushResult, pushImage } from './clients.ts';
import { RequestCounter } from './counter.ts';
import { type HttpsRequestOptions, type HttpsResponse, httpsRequest } from './http.ts';
import { type Daemon, run, spawnDaemon } from './process.ts';

export interface Credentials {
  username: string;
  password: string;
}

export interface RegistryOptions {
  /** Require HTTP Basic auth (htpasswd, bcrypt) with these credentials. */
  auth?: Credentials;
  /** Extra DNS SANs for the registry certificate (default ['registry.test']). */
  names?: string[];
  /** More top-level sections of distribution's configuration, e.g. `{ auth: { token: ... } }`. */
  config?: Record<string, unknown>;
}

export interface Registry {
  port: number;
  /** Always '127.0.0.1'. */
  host: string;
  /** '127.0.0.1:PORT' — what skopeo's docker:// references use. */
  hostPort: string;
  /** 'https://127.0.0.1:PORT' */
  url: string;
  /** Certificate SANs besides localhost and 127.0.0.1 (address the registry as `${names[0]}:${port}`). */
  names: string[];
  /** `${names[0]}:PORT`, e.g. 'registry.test:41234' (or 'localhost:PORT' without names). */
  namedHostPort: string;
  auth?: Credentials;
  caCertPem: string;
  caCertPath: string;
  /** Directory holding only ca.crt, for skopeo --src-cert-dir / --dest-cert-dir. */
  certDir: string;
  /** The registry's working dir (config, htpasswd, storage under ./storage). */
  dir: string;
  storageDir: string;
  counter: RequestCounter;
  daemon: Daemon;
  /** `127.0.0.1:PORT/<repoRef>` */
  ref(repoRef: string): string;
  /** Pushes with skopeo; uses the registry's credentials unless `opts.creds` is given (null: none). */
  push(image: PushableImage, repoRef: string, opts?: PushOptions): Promise<PushResult>;
  /** An HTTPS request to this registry (path like '/v2/'), trusting the test CA. */
  request(path: string, opts?: HttpsRequestOptions): Promise<HttpsResponse>;
  /** Stops the registry (SIGTERM, then SIGKILL). Idempotent; storage stays until the harness cleans up. */
  close(): Promise<void>;
}

// The combined log format: host ident user [date] "METHOD URI PROTO" status size "referer" "ua"
const ACCESS_LINE =
  /^\S+ \S+ \S+ \[[^\]]*\] "(\S+) (\S+) [^"]*" (\d{3}) (\d+|-) "(?:[^"\\]|\\.)*" "((?:[^"\\]|\\.)*)"/;

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

async function waitReady(url: string, ca: string, daemon: Daemon, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!daemon.running()) return false;
    try {
      const res = await httpsRequest(`${url}/v2/`, { ca, timeoutMs: 1000 });
      if (res.status === 200 || res.status === 401) return true;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 30));
  }
  throw new Error(`registry at ${url} not ready after ${timeoutMs} ms\n${daemon.output()}`);
}

/** Starts a registry in `dir` (created if missing), with a certificate from `ca`. */
export async function startRegistry(dir: string, ca: TestCA, opts: RegistryOptions = {}): Promise<Registry> {
  const names = opts.names ?? ['registry.test'];
  await mkdir(dir, { recursive: true });
  const storageDir = join(dir, 'storage');
  await mkdir(storageDir, { recursive: true });
  const cert = await ca.issue(['localhost', '127.0.0.1', ...names]);

  let authConfig: Record<string, unknown> | undefined;
  if (opts.auth) {
    const htpasswdPath = join(dir, 'htpasswd');
    const { stdout } = await run('htpasswd', ['-Bbn', opts.auth.username, opts.auth.password]);
    await writeFile(htpasswdPath, stdout);
    authConfig = { htpasswd: { realm: 'drp-test', path: htpasswdPath } };
  }

  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const config = distributionConfig({
      port,
      storageDir,
      cert,
      accessLog: true,
      extra: { ...(authConfig ? { auth: authConfig } : {}), ...opts.config },
    });
    // JSON is valid YAML, and the registry's YAML parser accepts it.
    const configPath = join(dir, 'config.yml');
    await writeFile(configPath, JSON.stringify(config, null, 2));

    const counter = new RequestCounter();
    const daemon = spawnDaemon('docker-registry', ['serve', configPath], {
      // Keep the registry from reading REGISTRY_* overrides from the test environment.
      env: Object.fromEntries(
        Object.keys(process.env)
          .filter((k) => k.startsWith('REGISTRY_'))
          .map((k) => [k, undefined]),
      ),
      onLine: (line, stream) => {
        if (stream !== 'stdout') return;
        const m = ACCESS_LINE.exec(line);
        if (!m) return;
        const [, method = '', path = '', status = '0', size = '0', ua] = m;
        counter.record({
          method,
          path,
          status: Number(status),
          bytes: size === '-' ? 0 : Number(size),
          userAgent: ua,
        });
      },
    });
    const url = `https://127.0.0.1:${port}`;
    const ready = await waitReady(url, ca.certPem, daemon, 15_000).catch(async (e: unknown) => {
      await daemon.stop();
      throw e;
    });
    if (!ready) {
      await daemon.exited;
      if (attempt < 5 && /address already in use/i.test(daemon.output())) continue;
      throw new Error(`docker-registry exited during startup:\n${daemon.output()}`);
    }
    // The readiness ping is logged asynchronously; wait for it so reset() really starts clean.
    // No log line means another server answered on that port: try another one.
    try {
      await counter.waitFor({ kind: 'ping' }, 1, 5000);
    } catch (e) {
      await daemon.stop();
      if (attempt < 5) continue;
      throw new Error(`registry on port ${port} never logged its readiness ping: ${e}\n${daemon.output()}`);
    }
    counter.reset();

    const registry: Registry = {
      port,
      host: '127.0.0.1',
      hostPort: `127.0.0.1:${port}`,
      url,
      names,
      namedHostPort: `${names[0] ?? 'localhost'}:${port}`,
      auth: opts.auth,
      caCertPem: ca.certPem,
      caCertPath: ca.certPath,
      certDir: ca.certDir,
      dir,
      storageDir,
      counter,
      daemon,
      ref: (repoRef) => `127.0.0.1:${port}/${repoRef}`,
      push: (image, repoRef, pushOpts = {}) =>
        pushImage(image, registry, repoRef, {
          ...pushOpts,
          creds: pushOpts.creds === undefined ? opts.auth : pushOpts.creds,
        }),
      request: (path, reqOpts = {}) => httpsRequest(`${url}${path}`, { ca: ca.certPem, ...reqOpts }),
      close: () => daemon.stop(),
    };
    return registry;
  }
}

export interface DistributionConfigOptions {
  port: number;
  storageDir: string;
  cert: { certPath: string; keyPath: string };
  /** JSON access log at info level (what the request counter reads); otherwise warnings only. */
  accessLog: boolean;
  /** More top-level sections: `auth`, `proxy`, ... */
  extra?: Record<string, unknown>;
}

/**
 * A distribution 2.8 configuration on 127.0.0.1 over TLS with filesystem storage, as JSON
 * (valid YAML). Shared by the harness registry and the benches' proxy-mode reference.
 */
export function distributionConfig(options: DistributionConfigOptions): Record<string, unknown> {
  return {
    version: 0.1,
    log: options.accessLog
      ? { level: 'info', formatter: 'json', accesslog: { disabled: false } }
      : { level: 'warn', formatter: 'text', accesslog: { disabled: true } },
    storage: {
      filesystem: { rootdirectory: options.storageDir },
      delete: { enabled: true },
      maintenance: { uploadpurging: { enabled: false } },
    },
    http: {
      addr: `127.0.0.1:${options.port}`,
      secret: randomBytes(16).toString('hex'),
      tls: { certificate: options.cert.certPath, key: options.cert.keyPath },
    },
    ...options.extra,
  };
}
