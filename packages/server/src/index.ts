/**
 * @drp/server: the `drp-server` daemon and a one-call embedding API for test suites.
 *
 *   const proxy = await startProxy({ registries: ['registry.test:5000'] });
 *   await run('skopeo', [...], { env: { ...process.env, ...proxy.env() } });
 *   await proxy.close();
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CacheEvents, parseMappings, type RegistryCredential } from '@drp/core';
import { createAccessLog, type LineSink, type LogFormat } from './access-log.js';
import {
  ConfigError,
  type DaemonOptions,
  deepFreeze,
  loadConfig,
  type Values,
  type VariableName,
} from './config.js';
import type { Expected } from './errors.js';
import { createProxy, type DrpProxy } from './proxy.js';
import { parseRegistries } from './registries.js';

export { type AccessLog, createAccessLog, type LineSink, type LogFormat } from './access-log.js';
export {
  ALWAYS_INTERCEPTED,
  ConfigError,
  type DaemonOptions,
  DEFAULTS,
  FLAGS,
  type InterceptRule,
  isIntercepted,
  type LoadConfigInput,
  loadConfig,
  type ServerConfig,
  type Timeouts,
  VARIABLES,
  type Values,
  type VariableName,
} from './config.js';
export { systemdSetupScript } from './endpoints.js';
export { isServerError, SERVER_ERROR_CODES, ServerError, type ServerErrorCode } from './errors.js';
export type { ForwardRecord, TunnelRecord } from './mitm.js';
export { type CreateProxyOptions, cacheOptionsFrom, createProxy, type DrpProxy } from './proxy.js';
export { VERSION } from './version.js';

export interface StartProxyOptions {
  /** Default 0: an ephemeral port. */
  port?: number;
  /** Default `127.0.0.1`. */
  host?: string;
  /** Default: a new temporary directory, removed by close(). */
  cacheDir?: string;
  /** Default: a new temporary directory (a new CA), removed by close(). */
  caDir?: string;
  /** Hosts to intercept besides Docker Hub: `host` (port 443), `host:port`, `host:*` or `*.domain`. */
  registries?: readonly string[];
  /** Credentials injected for clients that send none (AUTH_REGISTRIES). */
  credentials?: readonly RegistryCredential[];
  allowPush?: boolean;
  /** ENABLE_MANIFEST_CACHE; tiers can be tuned through `env`. */
  manifestCache?: boolean;
  /** Extra PEM certificates trusted for upstream TLS (e.g. a test registry's CA). */
  upstreamCa?: string | readonly string[];
  /** `{ 'registry.test': '127.0.0.1' }`: connect elsewhere for a name (every port, or `host:port`). */
  upstreamMappings?: Readonly<Record<string, string>>;
  /** Verify upstream TLS (VERIFY_SSL). Default true. */
  verifyTls?: boolean;
  /** The access log: false (default) for none, `json`/`text` to stderr, or a function per line. */
  log?: boolean | LogFormat | LineSink;
  /** Any of the daemon's variables (e.g. `CACHE_MAX_SIZE`); the options above win over them. */
  env?: Readonly<Partial<Record<VariableName, string>>>;
}

export interface RunningProxy {
  /** `http://127.0.0.1:PORT`: the value for HTTPS_PROXY / HTTP_PROXY. */
  readonly url: string;
  readonly port: number;
  readonly host: string;
  /** The CA clients must trust (PEM). */
  readonly caCertPem: string;
  readonly caFingerprint: string;
  readonly cacheDir: string;
  readonly caDir: string;
  /** The cache's events (`request`, `hit`, `miss`, `store`, ...). */
  readonly events: CacheEvents;
  /** The full proxy, for what this summary does not show. */
  readonly proxy: DrpProxy;
  /** Environment for a client process: HTTPS_PROXY, HTTP_PROXY (both cases), NO_PROXY. */
  env(): Record<string, string>;
  /** Stops the proxy (in-flight requests get `graceMs`, default 5 s; 0 stops at once) and removes temp dirs it made. */
  close(graceMs?: number): Promise<void>;
}

/** A typed option that does not parse: a ConfigError naming the option. */
function typed<T>(option: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    throw new ConfigError(
      `invalid option ${option}: expected ${(error as Expected).expected ?? (error as Error).message}`,
    );
  }
}

/**
 * The typed options as the daemon's typed values: passed straight through (no round trip
 * through environment strings); only registries and mappings, given as text, are parsed here.
 */
function valuesFrom(options: StartProxyOptions, cacheDir: string, caDir: string): Partial<Values> {
  const values: Partial<Values> = {
    PORT: options.port ?? 0,
    BIND: options.host ?? '127.0.0.1',
    CACHE_DIR: cacheDir,
    CA_DIR: caDir,
  };
  if (options.env?.METRICS === undefined) values.METRICS = false;
  if (options.registries) {
    values.REGISTRIES = typed(
      'registries',
      () => options.registries?.flatMap((e) => parseRegistries(e)) ?? [],
    );
  }
  if (options.allowPush !== undefined) values.ALLOW_PUSH = options.allowPush;
  if (options.manifestCache !== undefined) values.ENABLE_MANIFEST_CACHE = options.manifestCache;
  if (options.verifyTls !== undefined) values.VERIFY_SSL = options.verifyTls;
  if (options.upstreamMappings) {
    // Checked with the one set of mapping rules (core's upstream/mappings.ts).
    typed('upstreamMappings', () => parseMappings(options.upstreamMappings ?? {}));
    values.UPSTREAM_MAPPINGS = { ...options.upstreamMappings };
  }
  return values;
}

/** Starts drp in-process; everything defaults to something private and temporary. */
export async function startProxy(options: StartProxyOptions = {}): Promise<RunningProxy> {
  const made: string[] = [];
  const temp = async (name: string) => {
    const dir = await mkdtemp(join(tmpdir(), `drp-${name}-`));
    made.push(dir);
    return dir;
  };
  const cleanup = () => Promise.all(made.map((d) => rm(d, { recursive: true, force: true })));
  try {
    const cacheDir = options.cacheDir ?? (await temp('cache'));
    const caDir = options.caDir ?? (await temp('ca'));
    const base = loadConfig({
      env: { ...options.env },
      values: valuesFrom(options, cacheDir, caDir),
      inContainer: false,
    });
    const config: DaemonOptions = options.credentials
      ? deepFreeze({ ...base, credentials: options.credentials.map((c) => ({ ...c })) })
      : base;
    const log =
      options.log === undefined || options.log === false
        ? undefined
        : typeof options.log === 'function'
          ? createAccessLog(base.logFormat, options.log)
          : createAccessLog(options.log === true ? base.logFormat : options.log, (line) => {
              process.stderr.write(line);
            });
    const upstreamCaPem = options.upstreamCa === undefined ? [] : [options.upstreamCa].flat();
    const proxy = await createProxy({ config, ...(log ? { log } : {}), upstreamCaPem });
    try {
      await proxy.listen();
    } catch (error) {
      await proxy.close(0);
      throw error;
    }
    const url = proxy.url;
    const address = proxy.address!;
    let closing: Promise<void> | undefined;
    return {
      url,
      port: address.port,
      host: address.address,
      caCertPem: proxy.ca.certPem,
      caFingerprint: proxy.ca.fingerprint256,
      cacheDir,
      caDir,
      events: proxy.cache.events,
      proxy,
      env() {
        return {
          HTTPS_PROXY: url,
          https_proxy: url,
          HTTP_PROXY: url,
          http_proxy: url,
          NO_PROXY: 'localhost,127.0.0.1,::1',
          no_proxy: 'localhost,127.0.0.1,::1',
        };
      },
      close(graceMs = 5000) {
        closing ??= proxy.close(graceMs).finally(cleanup);
        return closing;
      },
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}
