// The systems a benchmark compares, each started on loopback the way its users run it, and
// each described by how curl and skopeo reach a registry path through it:
//
//   direct        the upstream registry itself (distribution 2.8, TLS, no auth)
//   drp           drp-server as an HTTPS_PROXY (CONNECT + its CA), upstream name mapped to loopback
//   nginx         Debian's nginx as a TLS reverse proxy with proxy_cache (the original's engine,
//                 configured like the original's caching locations)
//   distribution  docker-registry in proxy mode (proxy.remoteurl), serving TLS itself
//
// Every process is owned by the harness (stopped and its dirs removed at h.close()).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  type Daemon,
  distributionConfig,
  freePort,
  type Harness,
  httpsRequest,
  type Registry,
  run,
} from '../../test/harness/index.ts';
import { NO_PROXY_ENV } from './clients.ts';
import { benchNode } from './node.ts';

export type SystemName = 'drp' | 'nginx' | 'distribution' | 'direct';

export interface System {
  name: SystemName;
  /** Root of the process tree to account CPU and RSS to; undefined for `direct`'s client-only view. */
  pid: number | undefined;
  /** curl arguments (URL last) that fetch `path` (e.g. /v2/repo/blobs/sha256:...) through this system. */
  curl(path: string): string[];
  /** skopeo source for `repo:tag`, with the cert dir and environment the pull needs. */
  skopeo(repoRef: string): { ref: string; certDir: string; env: Record<string, string | undefined> };
  /** Free-form details for the report (version, config knobs). */
  info: Record<string, string>;
  close(): Promise<void>;
}

export const REPO_ROOT = resolve(import.meta.dirname, '..', '..');

async function waitFor(what: string, daemon: Daemon, probe: () => Promise<boolean>, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!daemon.running()) throw new Error(`${what} exited during startup:\n${daemon.output()}`);
    try {
      if (await probe()) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} not ready after ${timeoutMs} ms:\n${daemon.output()}`);
}

/** The upstream registry itself, reached by name mapped to loopback. */
export function directSystem(upstream: Registry): System {
  return {
    name: 'direct',
    pid: upstream.daemon.pid,
    curl: (path) => ['--cacert', upstream.caCertPath, `${upstream.url}${path}`],
    skopeo: (repoRef) => ({ ref: `${upstream.hostPort}/${repoRef}`, certDir: upstream.certDir, env: {} }),
    info: { engine: 'docker-registry (upstream)' },
    close: async () => {},
  };
}

export interface DrpOptions {
  /** Extra environment for drp-server (e.g. ENABLE_MANIFEST_CACHE). */
  env?: Record<string, string>;
  /** Extra node flags, e.g. ['--cpu-prof', '--cpu-prof-dir=...'] (also from $DRP_BENCH_NODE_ARGS). */
  nodeArgs?: string[];
  /** Keep this CA dir across restarts (so a leaf cache / trust setup is reused). */
  caDir?: string;
  /** Every line drp-server writes (its access log is JSON lines on stdout). */
  onLine?: (line: string) => void;
  /** Another built checkout to run drp-server from (bench/ab.ts); default this one. */
  root?: string;
}

/**
 * drp-server from this checkout (packages/server, built), as clients use it: an HTTPS proxy, on
 * the Node binary of `--node` / $BENCH_NODE (default: the bench's own).
 */
export async function startDrp(
  h: Harness,
  upstream: Pick<Registry, 'namedHostPort' | 'hostPort'>,
  opts: DrpOptions = {},
): Promise<System> {
  const ca = await h.testCA();
  const port = await freePort();
  const cacheDir = h.tempDir('drp-cache');
  const caDir = opts.caDir ?? h.tempDir('drp-ca');
  const upstreamName = upstream.namedHostPort; // registry.test:PORT
  const nodeArgs = [
    ...(process.env.DRP_BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
    ...(opts.nodeArgs ?? []),
  ];
  const daemon = h.spawn(
    benchNode(),
    [...nodeArgs, join(opts.root ?? REPO_ROOT, 'packages/server/bin/drp-server.js')],
    {
      env: {
        ...NO_PROXY_ENV,
        PORT: String(port),
        BIND: '127.0.0.1',
        CACHE_DIR: cacheDir,
        CA_DIR: caDir,
        REGISTRIES: upstreamName,
        UPSTREAM_MAPPINGS: `${upstreamName}=${upstream.hostPort}`,
        UPSTREAM_CA_FILE: ca.certPath,
        DEBUG: undefined,
        ...opts.env,
      },
      keepLines: 50,
      ...(opts.onLine ? { onLine: opts.onLine } : {}),
    },
  );
  const proxyUrl = `http://127.0.0.1:${port}`;
  let caPem = '';
  await waitFor('drp-server', daemon, async () => {
    const res = await fetch(`${proxyUrl}/ca.crt`);
    if (res.status !== 200) return false;
    caPem = await res.text();
    return caPem.includes('BEGIN CERTIFICATE');
  });
  const certDir = h.tempDir('drp-certs');
  writeFileSync(join(certDir, 'ca.crt'), caPem);
  const caPath = join(certDir, 'ca.crt');
  return {
    name: 'drp',
    pid: daemon.pid,
    curl: (path) => ['--proxy', proxyUrl, '--cacert', caPath, `https://${upstreamName}${path}`],
    skopeo: (repoRef) => ({
      ref: `${upstreamName}/${repoRef}`,
      certDir,
      env: { ...NO_PROXY_ENV, HTTPS_PROXY: proxyUrl, https_proxy: proxyUrl },
    }),
    info: { engine: 'drp-server', cacheDir, proxy: proxyUrl },
    close: () => daemon.stop(),
  };
}

export async function nginxVersion(): Promise<string> {
  const r = await run('nginx', ['-v'], { check: false });
  return (r.stderr || r.stdout).trim().replace(/^nginx version: /, '');
}

/**
 * nginx as a TLS reverse proxy with proxy_cache in front of the upstream: the caching part of
 * the original (rpardini/docker-registry-proxy), with its cache settings: key $uri, 200/206 kept
 * 60 days, cache lock, HTTP/1.1 upstream, no temp-file buffering, request bodies streamed.
 */
export async function startNginx(h: Harness, upstream: Registry): Promise<System> {
  const ca = await h.testCA();
  const cert = await ca.issue(['localhost', '127.0.0.1', 'registry.test']);
  const dir = h.tempDir('nginx');
  for (const d of ['cache', 'tmp', 'logs']) mkdirSync(join(dir, d), { recursive: true });
  const port = await freePort();
  // As root, workers would run as nobody and could not open the harness's 0700 temp dirs.
  const user = process.getuid?.() === 0 ? 'user root root;' : '';
  const conf = `
${user}
worker_processes auto;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 300s;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  proxy_cache_path ${dir}/cache levels=1:2 max_size=32g inactive=60d keys_zone=cache:10m use_temp_path=off;
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${cert.certPath};
    ssl_certificate_key ${cert.keyPath};
    ssl_protocols TLSv1.2 TLSv1.3;
    chunked_transfer_encoding on;
    proxy_read_timeout 900s;
    proxy_max_temp_file_size 0;
    proxy_request_buffering off;
    proxy_http_version 1.1;
    proxy_cache_lock on;
    proxy_cache_lock_timeout 880s;
    location / {
      proxy_pass https://${upstream.hostPort};
      proxy_set_header Host ${upstream.namedHostPort};
      proxy_set_header Connection "";
      proxy_ssl_server_name on;
      proxy_ssl_name registry.test;
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate ${ca.certPath};
      proxy_cache cache;
      proxy_cache_key $uri;
      proxy_cache_valid 200 206 60d;
      add_header X-Cache-Status $upstream_cache_status;
    }
  }
}
`;
  const confPath = join(dir, 'nginx.conf');
  writeFileSync(confPath, conf);
  const daemon = h.spawn('nginx', ['-p', dir, '-c', confPath, '-e', join(dir, 'logs/error.log')], {
    env: NO_PROXY_ENV,
  });
  const url = `https://127.0.0.1:${port}`;
  await waitFor('nginx', daemon, async () => {
    const res = await httpsRequest(`${url}/v2/`, { ca: ca.certPem, timeoutMs: 2000 });
    return res.status === 200 || res.status === 401;
  });
  return {
    name: 'nginx',
    pid: daemon.pid,
    curl: (path) => ['--cacert', ca.certPath, `${url}${path}`],
    skopeo: (repoRef) => ({ ref: `127.0.0.1:${port}/${repoRef}`, certDir: ca.certDir, env: NO_PROXY_ENV }),
    info: { engine: `nginx ${await nginxVersion()}`, config: confPath },
    close: () => daemon.stop(),
  };
}

/**
 * distribution (docker-registry 2.8) in proxy mode: proxy.remoteurl at the upstream (which must
 * not need Basic auth: 2.8 cannot send it), its own TLS with a test-CA certificate, and the test
 * CA trusted for the upstream through SSL_CERT_FILE.
 */
export async function startDistribution(h: Harness, upstream: Registry): Promise<System> {
  const ca = await h.testCA();
  const cert = await ca.issue(['localhost', '127.0.0.1', 'registry.test']);
  const dir = h.tempDir('distribution');
  const storage = join(dir, 'storage');
  mkdirSync(storage, { recursive: true });
  const port = await freePort();
  const config = distributionConfig({
    port,
    storageDir: storage,
    cert,
    accessLog: false,
    extra: { proxy: { remoteurl: upstream.url } },
  });
  const configPath = join(dir, 'config.yml');
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  const env: Record<string, string | undefined> = { ...NO_PROXY_ENV, SSL_CERT_FILE: ca.certPath };
  for (const k of Object.keys(process.env)) if (k.startsWith('REGISTRY_')) env[k] = undefined;
  const daemon = h.spawn('docker-registry', ['serve', configPath], { env, keepLines: 50 });
  const url = `https://127.0.0.1:${port}`;
  await waitFor('docker-registry (proxy)', daemon, async () => {
    const res = await httpsRequest(`${url}/v2/`, { ca: ca.certPem, timeoutMs: 2000 });
    return res.status === 200;
  });
  return {
    name: 'distribution',
    pid: daemon.pid,
    curl: (path) => ['--cacert', ca.certPath, `${url}${path}`],
    skopeo: (repoRef) => ({ ref: `127.0.0.1:${port}/${repoRef}`, certDir: ca.certDir, env: NO_PROXY_ENV }),
    info: { engine: 'docker-registry 2.8 proxy', config: configPath },
    close: () => daemon.stop(),
  };
}
