/**
 * The daemon's configuration: every environment variable of the original
 * (rpardini/docker-registry-proxy) with the same meaning and default, drp's own additions, and
 * command-line flags for the common ones. Precedence: flags > environment > DEFAULTS.
 *
 * Read and validated once, at start, with env-var; the result is frozen. A bad value is a
 * ConfigError whose message names the variable (or flag) and the expected form; a value that
 * may hold a secret (AUTH_REGISTRIES) is never echoed.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  type AccessCheckMode,
  createCidrList,
  parseAuthRegistries,
  parseDuration,
  parseHostPort,
  parseMappingList,
  parseNoProxy,
  parseSize,
  parseUpstreamProxy,
  type RegistryCredential,
  splitList,
} from '@drp/core';
import envVar from 'env-var';
import { ConfigError } from './errors.js';
import { type ProxyUser, parseHtpasswd } from './front/proxy-auth.js';
import { type InterceptRule, parseRegistries } from './registries.js';

export { ConfigError } from './errors.js';
export { type InterceptRule, isIntercepted } from './registries.js';

/** Hosts that are always intercepted, whatever REGISTRIES says (Docker Hub). */
export const ALWAYS_INTERCEPTED = Object.freeze(['registry-1.docker.io', 'auth.docker.io']);

/** Where the container image keeps its volumes; their presence selects the container defaults. */
export const CONTAINER_CACHE_DIR = '/docker_mirror_cache';
export const CONTAINER_CA_DIR = '/ca';

/**
 * Every default, in one place. Values are the text an environment variable would hold, so the
 * same validation applies to defaults and to user input.
 */
export const DEFAULTS = Object.freeze({
  // --- the original's variables (same names, same defaults) ---
  /** Hosts to intercept, spaces or commas (`host` = port 443, `host:port`, `host:*`, `*.domain`). */
  REGISTRIES: 'registry.k8s.io gcr.io quay.io ghcr.io',
  /** `host:user:password` entries; empty by default (the original shipped two dummy entries). */
  AUTH_REGISTRIES: '',
  AUTH_REGISTRIES_DELIMITER: ' ',
  AUTH_REGISTRY_DELIMITER: ':',
  /** Tag manifests are cached per tier only when true. */
  ENABLE_MANIFEST_CACHE: 'false',
  MANIFEST_CACHE_PRIMARY_REGEX: '(stable|nightly|production|test)',
  MANIFEST_CACHE_PRIMARY_TIME: '10m',
  MANIFEST_CACHE_SECONDARY_REGEX: '(.*)(\\d|\\.)+(.*)(\\d|\\.)+(.*)(\\d|\\.)+',
  MANIFEST_CACHE_SECONDARY_TIME: '60d',
  MANIFEST_CACHE_DEFAULT_TIME: '1h',
  /** LRU cap on the whole cache, nginx sizes (k, m, g). */
  CACHE_MAX_SIZE: '32g',
  /** Entries not read for this long are removed. */
  CACHE_INACTIVE: '60d',
  /**
   * How often the daemon re-hashes every stored entry and removes corrupt ones (blob hits are
   * not re-hashed; see docs/operations.md). 0 turns the background scrub off.
   */
  CACHE_SCRUB_INTERVAL: '24h',
  ALLOW_PUSH: 'false',
  /** Accepted for compatibility; drp always streams request bodies (see docs/configuration.md). */
  PROXY_REQUEST_BUFFERING: 'true',
  VERIFY_SSL: 'true',
  /** `true` enables every `drp:*` debug namespace; anything else but `false` is a namespace list. */
  DEBUG: 'false',
  DEBUG_HUB: 'false',
  DEBUG_NGINX: 'false',
  /** Client stops reading the response for this long: connection closed (nginx send_timeout). */
  SEND_TIMEOUT: '60s',
  /** Client stops sending a request body for this long: connection closed. */
  CLIENT_BODY_TIMEOUT: '60s',
  /** Time allowed to send request headers. */
  CLIENT_HEADER_TIMEOUT: '60s',
  /** Idle keep-alive connections are closed after this long. */
  KEEPALIVE_TIMEOUT: '300s',
  /** Longest silence while reading an upstream body. The original hard-codes 900s in practice. */
  PROXY_READ_TIMEOUT: '900s',
  PROXY_CONNECT_TIMEOUT: '60s',
  /** Time upstream may take to answer a request it was sent (until response headers). */
  PROXY_SEND_TIMEOUT: '60s',
  /** Raw (not intercepted) CONNECT tunnels: idle time before they are closed, and connect time. */
  PROXY_CONNECT_READ_TIMEOUT: '60s',
  PROXY_CONNECT_CONNECT_TIMEOUT: '60s',
  PROXY_CONNECT_SEND_TIMEOUT: '60s',
  /** Resolve upstream names (and tunnel targets) to IPv4 only; listen on IPv4 only. */
  DISABLE_IPV6: 'false',
  /** Bring your own CA; unset means the CA lives in CA_DIR (ca.crt + ca.key). */
  CA_KEY_FILE: undefined,
  CA_CRT_FILE: undefined,
  /** Accepted and ignored: drp issues random 128-bit serials and needs no serial file. */
  CA_SRL_FILE: undefined,

  // --- drp's own ---
  PORT: '3128',
  /** Listen address; `::` is every interface, IPv4 and IPv6 (0.0.0.0 when IPv6 is unavailable). */
  BIND: '::',
  /** Defaults to /docker_mirror_cache in the container image, ./.drp/cache elsewhere. */
  CACHE_DIR: undefined,
  /** Defaults to /ca in the container image, ./.drp/ca elsewhere. */
  CA_DIR: undefined,
  /** Passphrase of the CA key (the original's CA keys are decrypted with its fixed one). */
  CA_KEY_PASSPHRASE: undefined,
  /** Extra PEM bundle trusted for upstream TLS, on top of Node's. */
  UPSTREAM_CA_FILE: undefined,
  /** Space-separated `host[:port]=address[:port]`: connect elsewhere for a name (#103). */
  UPSTREAM_MAPPINGS: '',
  /** Access log format on stdout. */
  LOG_FORMAT: 'json',
  /** Prometheus metrics at /metrics on the plain endpoint. */
  METRICS: 'true',
  /**
   * Who must prove with an upstream HEAD (own credentials, remembered 60 s) that it may read
   * cached content by digest before getting it: `private` = content another client fetched
   * with its own credentials (anonymous and AUTH_REGISTRIES content stays shared); `all` =
   * anything this client did not fetch itself; `off` = nobody, as with the original.
   * `true`/`false` mean `all`/`off`.
   */
  VERIFY_BLOB_ACCESS: 'private',
  /** With a stale answer at hand (expired tag, remembered ping): wait this long for upstream, then serve it. */
  UPSTREAM_STALE_TIMEOUT: '5s',
  /** SIGTERM/SIGINT: how long in-flight transfers may take to finish before drp exits anyway. */
  SHUTDOWN_TIMEOUT: '30s',

  // --- admission and egress (docs/security.md) ---
  /**
   * CIDRs (comma/space-separated) that may use CONNECT, absolute-form requests, mirror requests
   * and the endpoints other than /ca.crt and /healthz; `all`: anyone (the original's openness).
   */
  ALLOWED_CLIENTS: '127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7,fe80::/10',
  /** `user:password` required as Proxy-Authorization (Authorization for /metrics etc.). */
  PROXY_AUTH: undefined,
  /** htpasswd file of bcrypt entries (`htpasswd -B`), same use as PROXY_AUTH. */
  PROXY_AUTH_FILE: undefined,
  /** Ports non-intercepted CONNECT tunnels may reach, plus every port REGISTRIES names; `*`: any. */
  TUNNEL_PORTS: '443',
  /**
   * CIDRs no tunnel, forward, upstream fetch or redirect may connect to (plus, by default, the
   * proxy's own addresses); empty: none. Names in REGISTRIES / UPSTREAM_MAPPINGS are exempt.
   */
  BLOCKED_DESTINATIONS: '127.0.0.0/8,::1/128,0.0.0.0/8,169.254.0.0/16,fe80::/10',
  /**
   * `http://[user:password@]host:port`: drp's own upstream connections (registries, token
   * servers, CDN redirects) go through this proxy with CONNECT. HTTPS_PROXY / HTTP_PROXY in
   * drp's environment are ignored on purpose (they often point at drp itself).
   */
  UPSTREAM_PROXY: undefined,
  /** Hosts reached without UPSTREAM_PROXY, curl's NO_PROXY rules: `a.example,.corp,10.0.0.0/8`. */
  UPSTREAM_NO_PROXY: '',
  /** Mirror mode: the registry of a `/v2/...` request with neither `?ns=` nor a host prefix. */
  MIRROR_DEFAULT_REGISTRY: 'docker.io',
  /** Mirror mode over TLS (leaf from drp's CA) on this port too; unset: plain HTTP only. */
  MIRROR_TLS_PORT: undefined,
} as const satisfies Record<string, string | undefined>);

export type VariableName = keyof typeof DEFAULTS;

export interface Timeouts {
  readonly sendMs: number;
  readonly clientBodyMs: number;
  readonly clientHeaderMs: number;
  readonly keepAliveMs: number;
  readonly proxyReadMs: number;
  readonly proxyConnectMs: number;
  readonly proxySendMs: number;
  /** UPSTREAM_STALE_TIMEOUT. */
  readonly upstreamStaleMs: number;
  readonly tunnelIdleMs: number;
  readonly tunnelConnectMs: number;
  readonly shutdownMs: number;
}

export interface ServerConfig {
  readonly port: number;
  readonly bind: string;
  readonly cacheDir: string;
  readonly caDir: string;
  /** Bring-your-own CA files (CA_CRT_FILE + CA_KEY_FILE), when both are set. */
  readonly caFiles: { readonly certFile: string; readonly keyFile: string } | undefined;
  readonly caPassphrase: string | undefined;
  readonly registries: readonly InterceptRule[];
  readonly credentials: readonly RegistryCredential[];
  readonly manifestCache: {
    readonly enabled: boolean;
    readonly primaryRegex: string;
    readonly primaryTime: string;
    readonly secondaryRegex: string;
    readonly secondaryTime: string;
    readonly defaultTime: string;
  };
  readonly maxSize: string;
  readonly inactive: string;
  /** CACHE_SCRUB_INTERVAL; 0: no background scrub. */
  readonly scrubIntervalMs: number;
  readonly allowPush: boolean;
  readonly verifyBlobAccess: AccessCheckMode;
  readonly verifyTls: boolean;
  readonly upstreamCaFile: string | undefined;
  readonly upstreamMappings: Readonly<Record<string, string>>;
  /** UPSTREAM_PROXY as given (it may hold a password); core parses it again. */
  readonly upstreamProxy: string | undefined;
  readonly upstreamNoProxy: string;
  /** MIRROR_DEFAULT_REGISTRY as `host` or `host:port` (`docker.io` for Docker Hub). */
  readonly mirrorDefaultRegistry: string;
  readonly mirrorTlsPort: number | undefined;
  readonly disableIpv6: boolean;
  readonly timeouts: Timeouts;
  readonly logFormat: 'json' | 'text';
  readonly metrics: boolean;
  /** ALLOWED_CLIENTS: CIDRs, or `all`. */
  readonly allowedClients: readonly string[] | 'all';
  /** PROXY_AUTH and PROXY_AUTH_FILE entries; empty: no proxy authentication. Secret. */
  readonly proxyUsers: readonly ProxyUser[];
  /** TUNNEL_PORTS as given (REGISTRIES ports are added where it is used), or `*`. */
  readonly tunnelPorts: readonly number[] | '*';
  /** BLOCKED_DESTINATIONS; `blockOwnAddresses`: also the proxy's own (the default). */
  readonly blockedDestinations: readonly string[];
  readonly blockOwnAddresses: boolean;
  /** `debug` namespaces to enable, from DEBUG / DEBUG_HUB / DEBUG_NGINX; undefined: none. */
  readonly debugNamespaces: string | undefined;
  /** Accepted for compatibility, reported at startup, otherwise without effect. */
  readonly compat: { readonly proxyRequestBuffering: boolean; readonly caSerialFile: string | undefined };
  /** Which variables were set by the user (environment or flag), for the startup summary. */
  readonly explicit: readonly VariableName[];
}

/** Command-line flags and the variable each one sets. */
export const FLAGS = Object.freeze({
  port: { short: 'p', variable: 'PORT', help: 'listen port (0 picks a free one)' },
  bind: { short: 'b', variable: 'BIND', help: 'listen address, e.g. 127.0.0.1, ::, 0.0.0.0' },
  'cache-dir': { short: undefined, variable: 'CACHE_DIR', help: 'cache directory' },
  'ca-dir': { short: undefined, variable: 'CA_DIR', help: 'CA directory (ca.crt + ca.key)' },
  registries: {
    short: 'r',
    variable: 'REGISTRIES',
    help: 'hosts to intercept, e.g. "ghcr.io,*.example.com"',
  },
  'allow-push': { short: undefined, variable: 'ALLOW_PUSH', help: 'let pushes through (true/false)' },
  'manifest-cache': {
    short: undefined,
    variable: 'ENABLE_MANIFEST_CACHE',
    help: 'cache tag manifests by tier (true/false)',
  },
  'cache-max-size': { short: undefined, variable: 'CACHE_MAX_SIZE', help: 'cache size cap, e.g. 32g' },
  'upstream-ca-file': {
    short: undefined,
    variable: 'UPSTREAM_CA_FILE',
    help: 'extra PEM bundle for upstream TLS',
  },
  'upstream-mappings': {
    short: undefined,
    variable: 'UPSTREAM_MAPPINGS',
    help: "'host[:port]=address[:port] ...'",
  },
  'log-format': { short: undefined, variable: 'LOG_FORMAT', help: 'json or text' },
  metrics: { short: undefined, variable: 'METRICS', help: 'serve /metrics (true/false)' },
} as const satisfies Record<string, { short: string | undefined; variable: VariableName; help: string }>);

export type FlagName = keyof typeof FLAGS;

/** Variables whose empty value means something (an empty list); every other empty one is unset. */
const EMPTY_IS_VALUE = new Set<string>([
  'REGISTRIES',
  'AUTH_REGISTRIES',
  'UPSTREAM_MAPPINGS',
  'BLOCKED_DESTINATIONS',
  'UPSTREAM_NO_PROXY',
]);
/** Never echo these values in an error. */
const SECRET = new Set<string>(['AUTH_REGISTRIES', 'CA_KEY_PASSPHRASE', 'PROXY_AUTH', 'UPSTREAM_PROXY']);

function shown(name: string, value: string): string {
  return SECRET.has(name)
    ? '<redacted>'
    : JSON.stringify(value.length > 200 ? `${value.slice(0, 200)}…` : value);
}

function expected(what: string): never {
  throw new Error(`expected ${what}`);
}

/** env-var accessors; each throws `expected …` and the caller adds the name and the value. */
const accessors = {
  asFlag(value: string): boolean {
    const v = value.trim().toLowerCase();
    if (['true', '1', 'yes', 'on'].includes(v)) return true;
    if (['false', '0', 'no', 'off'].includes(v)) return false;
    return expected('true or false');
  },
  asDurationMs(value: string): number {
    const ms = parseDuration(value);
    if (ms === undefined)
      return expected('a duration such as 60s, 10m, 1h or 60d (a bare number is seconds)');
    return ms;
  },
  asDurationText(value: string): string {
    if (parseDuration(value) === undefined) {
      return expected('a duration such as 60s, 10m, 1h or 60d (a bare number is seconds)');
    }
    return value.trim();
  },
  asSizeText(value: string): string {
    if (parseSize(value) === undefined) return expected('a size such as 512m, 32g or 1t');
    return value.trim();
  },
  asRegexSource(value: string): string {
    try {
      new RegExp(value);
    } catch {
      return expected('a valid regular expression');
    }
    return value;
  },
  asListenPort(value: string): number {
    const v = value.trim();
    if (!/^\d{1,5}$/.test(v) || Number(v) > 65535) return expected('a port number from 0 to 65535');
    return Number(v);
  },
  asBindAddress(value: string): string {
    const v = value.trim().replace(/^\[(.*)\]$/, '$1');
    if (isIP(v) === 0 && v !== 'localhost') return expected('an IP address such as ::, 0.0.0.0 or 127.0.0.1');
    return v;
  },
  asRegistries(value: string): InterceptRule[] {
    return parseRegistries(value);
  },
  asMappings(value: string): Record<string, string> {
    try {
      return parseMappingList(value);
    } catch (error) {
      return expected((error as Error).message);
    }
  },
  asReadableFile(value: string): string {
    const path = resolve(value);
    let isFile: boolean;
    try {
      isFile = statSync(path).isFile();
    } catch {
      return expected('a readable file (it does not exist)');
    }
    if (!isFile) return expected('a readable file (it is not a regular file)');
    return path;
  },
  asAccessMode(value: string): AccessCheckMode {
    const v = value.trim().toLowerCase();
    if (v === 'private' || v === 'all' || v === 'off') return v;
    if (['true', '1', 'yes', 'on'].includes(v)) return 'all';
    if (['false', '0', 'no'].includes(v)) return 'off';
    return expected('private, all or off');
  },
  asLogFormat(value: string): 'json' | 'text' {
    const v = value.trim().toLowerCase();
    if (v !== 'json' && v !== 'text') return expected('json or text');
    return v;
  },
  asDebug(value: string): string | undefined {
    const v = value.trim();
    const lower = v.toLowerCase();
    if (lower === '' || ['false', '0', 'no', 'off'].includes(lower)) return undefined;
    if (['true', '1', 'yes', 'on'].includes(lower)) return 'drp:*';
    if (!/^[\w:*,.\- ]+$/.test(v)) return expected('true, false, or debug namespaces such as drp:*');
    return v;
  },
  asText(value: string): string {
    return value;
  },
  asCidrs(value: string): string[] {
    try {
      return [...createCidrList(splitList(value)).entries];
    } catch (error) {
      return expected(
        `CIDR ranges such as 10.0.0.0/8 or fc00::/7, comma- or space-separated (${(error as Error).message})`,
      );
    }
  },
  asClients(value: string): string[] | 'all' {
    if (value.trim().toLowerCase() === 'all') return 'all';
    const list = accessors.asCidrs(value);
    if (list.length === 0) return expected('CIDR ranges, or all');
    return list;
  },
  asPorts(value: string): number[] | '*' {
    if (value.trim() === '*') return '*';
    const ports: number[] = [];
    for (const entry of splitList(value)) {
      if (!/^[1-9]\d{0,4}$/.test(entry) || Number(entry) > 65535) {
        return expected(
          `ports from 1 to 65535, comma- or space-separated, or *; got ${JSON.stringify(entry)}`,
        );
      }
      ports.push(Number(entry));
    }
    return ports;
  },
  asUserPassword(value: string): ProxyUser {
    const colon = value.indexOf(':');
    if (colon <= 0 || colon === value.length - 1) return expected('user:password');
    return { username: value.slice(0, colon), password: value.slice(colon + 1) };
  },
  asUpstreamProxy(value: string): string {
    const parsed = parseUpstreamProxy(value);
    if (typeof parsed === 'string') return expected(parsed);
    return value.trim();
  },
  asNoProxy(value: string): string {
    const parsed = parseNoProxy(value);
    if (typeof parsed === 'string') return expected(parsed);
    return value.trim();
  },
  asRegistryHost(value: string): string {
    const v = value.trim().toLowerCase();
    if (!parseHostPort(v) || /^https?:/.test(v))
      return expected('a registry host such as docker.io or ghcr.io');
    return v;
  },
};

export interface LoadConfigInput {
  /** Environment variables (default process.env). */
  env?: Readonly<Record<string, string | undefined>>;
  /** Flags already parsed into variable values (see parseFlags). They win over `env`. */
  overrides?: Readonly<Partial<Record<VariableName, string>>>;
  /** Base for relative paths and for the laptop defaults (default process.cwd()). */
  cwd?: string;
  /** Whether the container volumes exist (default: /docker_mirror_cache is a directory). */
  inContainer?: boolean;
}

function isDirectory(path: string): boolean {
  try {
    return existsSync(path) && statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** Reads, validates and freezes the configuration. Throws ConfigError. */
export function loadConfig(input: LoadConfigInput = {}): ServerConfig {
  const env = input.env ?? process.env;
  const cwd = input.cwd ?? process.cwd();
  const overrides = input.overrides ?? {};
  const container: Record<string, string> = {};
  const explicit: VariableName[] = [];
  const viaFlag = new Set<string>();
  for (const name of Object.keys(DEFAULTS) as VariableName[]) {
    const fromFlag = overrides[name];
    const value = fromFlag ?? env[name];
    if (value === undefined) continue;
    if (value.trim() === '' && !EMPTY_IS_VALUE.has(name)) continue;
    container[name] = value;
    explicit.push(name);
    if (fromFlag !== undefined) viaFlag.add(name);
  }
  const reader = envVar.from(container, accessors);

  function read<T>(name: VariableName, parse: (v: ReturnType<typeof reader.get>) => T | undefined): T {
    const fallback = DEFAULTS[name];
    const variable = fallback === undefined ? reader.get(name) : reader.get(name).default(fallback);
    try {
      return parse(variable) as T;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      const reason = message.replace(/^env-var: "[^"]*" /, '');
      const label = viaFlag.has(name) ? `${flagFor(name)} (${name})` : name;
      const value = container[name] ?? fallback ?? '';
      const got = reason.includes(', got ') ? '' : `, got ${shown(name, value)}`;
      throw new ConfigError(`invalid ${label}: ${reason}${got}`);
    }
  }

  const inContainer = input.inContainer ?? isDirectory(CONTAINER_CACHE_DIR);
  const cacheDirText = read<string | undefined>('CACHE_DIR', (v) => v.asText());
  const caDirText = read<string | undefined>('CA_DIR', (v) => v.asText());
  const cacheDir = resolve(cwd, cacheDirText ?? (inContainer ? CONTAINER_CACHE_DIR : '.drp/cache'));
  const caDir = resolve(cwd, caDirText ?? (inContainer ? CONTAINER_CA_DIR : '.drp/ca'));

  const caCrtFile = read<string | undefined>('CA_CRT_FILE', (v) => v.asText());
  const caKeyFile = read<string | undefined>('CA_KEY_FILE', (v) => v.asText());
  if ((caCrtFile === undefined) !== (caKeyFile === undefined)) {
    throw new ConfigError(
      `invalid ${caCrtFile === undefined ? 'CA_CRT_FILE' : 'CA_KEY_FILE'}: CA_CRT_FILE and CA_KEY_FILE must be set together (or neither, to use CA_DIR)`,
    );
  }

  const entryDelimiter = read<string>('AUTH_REGISTRIES_DELIMITER', (v) => v.asText());
  const fieldDelimiter = read<string>('AUTH_REGISTRY_DELIMITER', (v) => v.asText());
  const authText = read<string>('AUTH_REGISTRIES', (v) => v.asText());
  const credentials = parseCredentials(authText, entryDelimiter, fieldDelimiter);

  const registries = read<InterceptRule[]>('REGISTRIES', (v) => v.asRegistries());
  for (const host of ALWAYS_INTERCEPTED) {
    if (!registries.some((r) => r.host === host && r.port === undefined))
      registries.push({ host, port: undefined });
  }

  const debugNamespaces = [
    read<string | undefined>('DEBUG', (v) => v.asDebug()),
    read<boolean>('DEBUG_HUB', (v) => v.asFlag()) ? 'drp:upstream*' : undefined,
    read<boolean>('DEBUG_NGINX', (v) => v.asFlag()) ? 'drp:*' : undefined,
  ].filter((n): n is string => n !== undefined);

  const timeouts: Timeouts = Object.freeze({
    sendMs: read('SEND_TIMEOUT', (v) => v.asDurationMs()),
    clientBodyMs: read('CLIENT_BODY_TIMEOUT', (v) => v.asDurationMs()),
    clientHeaderMs: read('CLIENT_HEADER_TIMEOUT', (v) => v.asDurationMs()),
    keepAliveMs: read('KEEPALIVE_TIMEOUT', (v) => v.asDurationMs()),
    proxyReadMs: read('PROXY_READ_TIMEOUT', (v) => v.asDurationMs()),
    proxyConnectMs: read('PROXY_CONNECT_TIMEOUT', (v) => v.asDurationMs()),
    proxySendMs: read('PROXY_SEND_TIMEOUT', (v) => v.asDurationMs()),
    upstreamStaleMs: read('UPSTREAM_STALE_TIMEOUT', (v) => v.asDurationMs()),
    tunnelIdleMs: Math.max(
      read<number>('PROXY_CONNECT_READ_TIMEOUT', (v) => v.asDurationMs()),
      read<number>('PROXY_CONNECT_SEND_TIMEOUT', (v) => v.asDurationMs()),
    ),
    tunnelConnectMs: read('PROXY_CONNECT_CONNECT_TIMEOUT', (v) => v.asDurationMs()),
    shutdownMs: read('SHUTDOWN_TIMEOUT', (v) => v.asDurationMs()),
  });

  const disableIpv6 = read<boolean>('DISABLE_IPV6', (v) => v.asFlag());
  const bindExplicit = container.BIND !== undefined;
  let bind = read<string>('BIND', (v) => v.asBindAddress());
  if (disableIpv6 && !bindExplicit) bind = '0.0.0.0';

  const upstreamCaText = read<string | undefined>('UPSTREAM_CA_FILE', (v) => v.asText());
  const upstreamCaFile =
    upstreamCaText === undefined
      ? undefined
      : read<string>('UPSTREAM_CA_FILE', () => accessors.asReadableFile(resolve(cwd, upstreamCaText)));

  const proxyUsers: ProxyUser[] = [];
  const plainUser = read<ProxyUser | undefined>('PROXY_AUTH', (v) => v.asUserPassword());
  if (plainUser) proxyUsers.push(Object.freeze(plainUser));
  const authFileText = read<string | undefined>('PROXY_AUTH_FILE', (v) => v.asText());
  if (authFileText !== undefined) {
    const path = read<string>('PROXY_AUTH_FILE', () => accessors.asReadableFile(resolve(cwd, authFileText)));
    try {
      proxyUsers.push(...parseHtpasswd(readFileSync(path, 'utf8')).map((u) => Object.freeze(u)));
    } catch (error) {
      throw new ConfigError(`invalid PROXY_AUTH_FILE ${path}: ${(error as Error).message}`);
    }
  }

  const config: ServerConfig = {
    port: read('PORT', (v) => v.asListenPort()),
    bind,
    cacheDir,
    caDir,
    caFiles:
      caCrtFile !== undefined && caKeyFile !== undefined
        ? Object.freeze({ certFile: resolve(cwd, caCrtFile), keyFile: resolve(cwd, caKeyFile) })
        : undefined,
    caPassphrase: read<string | undefined>('CA_KEY_PASSPHRASE', (v) => v.asText()),
    registries: Object.freeze(registries.map((r) => Object.freeze(r))),
    credentials: Object.freeze(credentials),
    manifestCache: Object.freeze({
      enabled: read<boolean>('ENABLE_MANIFEST_CACHE', (v) => v.asFlag()),
      primaryRegex: read<string>('MANIFEST_CACHE_PRIMARY_REGEX', (v) => v.asRegexSource()),
      primaryTime: read<string>('MANIFEST_CACHE_PRIMARY_TIME', (v) => v.asDurationText()),
      secondaryRegex: read<string>('MANIFEST_CACHE_SECONDARY_REGEX', (v) => v.asRegexSource()),
      secondaryTime: read<string>('MANIFEST_CACHE_SECONDARY_TIME', (v) => v.asDurationText()),
      defaultTime: read<string>('MANIFEST_CACHE_DEFAULT_TIME', (v) => v.asDurationText()),
    }),
    maxSize: read('CACHE_MAX_SIZE', (v) => v.asSizeText()),
    inactive: read<string>('CACHE_INACTIVE', (v) => v.asDurationText()),
    scrubIntervalMs: read('CACHE_SCRUB_INTERVAL', (v) => v.asDurationMs()),
    allowPush: read('ALLOW_PUSH', (v) => v.asFlag()),
    verifyBlobAccess: read('VERIFY_BLOB_ACCESS', (v) => v.asAccessMode()),
    verifyTls: read('VERIFY_SSL', (v) => v.asFlag()),
    upstreamCaFile,
    upstreamMappings: Object.freeze(read<Record<string, string>>('UPSTREAM_MAPPINGS', (v) => v.asMappings())),
    upstreamProxy: read<string | undefined>('UPSTREAM_PROXY', (v) => v.asUpstreamProxy()),
    upstreamNoProxy: read<string>('UPSTREAM_NO_PROXY', (v) => v.asNoProxy()),
    mirrorDefaultRegistry: read<string>('MIRROR_DEFAULT_REGISTRY', (v) => v.asRegistryHost()),
    mirrorTlsPort: read<number | undefined>('MIRROR_TLS_PORT', (v) => v.asListenPort()),
    disableIpv6,
    timeouts,
    logFormat: read('LOG_FORMAT', (v) => v.asLogFormat()),
    metrics: read('METRICS', (v) => v.asFlag()),
    allowedClients: freezeList(read<string[] | 'all'>('ALLOWED_CLIENTS', (v) => v.asClients())),
    proxyUsers: Object.freeze(proxyUsers),
    tunnelPorts: freezeList(read<number[] | '*'>('TUNNEL_PORTS', (v) => v.asPorts())),
    blockedDestinations: Object.freeze(read<string[]>('BLOCKED_DESTINATIONS', (v) => v.asCidrs())),
    blockOwnAddresses: container.BLOCKED_DESTINATIONS === undefined,
    debugNamespaces: debugNamespaces.length > 0 ? debugNamespaces.join(',') : undefined,
    compat: Object.freeze({
      proxyRequestBuffering: read<boolean>('PROXY_REQUEST_BUFFERING', (v) => v.asFlag()),
      caSerialFile: read<string | undefined>('CA_SRL_FILE', (v) => v.asText()),
    }),
    explicit: Object.freeze(explicit),
  };
  return Object.freeze(config);
}

function freezeList<T, W extends string>(value: T[] | W): readonly T[] | W {
  return typeof value === 'string' ? value : Object.freeze(value);
}

/** AUTH_REGISTRIES through core's parser; its messages never contain a user name or password. */
function parseCredentials(
  value: string,
  entryDelimiter: string,
  fieldDelimiter: string,
): RegistryCredential[] {
  try {
    return parseAuthRegistries(value, { entryDelimiter, fieldDelimiter }).map((c) => Object.freeze(c));
  } catch (error) {
    throw new ConfigError(error instanceof Error ? error.message : 'invalid AUTH_REGISTRIES');
  }
}

function flagFor(variable: string): string {
  const entry = Object.entries(FLAGS).find(([, f]) => f.variable === variable);
  return entry ? `--${entry[0]}` : variable;
}

export interface ParsedArgs {
  readonly command: 'serve' | 'help' | 'version' | 'ca';
  /** For `ca`: print, fingerprint or rotate. */
  readonly subcommand: string | undefined;
  readonly overrides: Partial<Record<VariableName, string>>;
}

/** Parses argv (without node and the script). Throws ConfigError on an unknown flag. */
export function parseFlags(argv: readonly string[]): ParsedArgs {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    help: { type: 'boolean', short: 'h' },
    version: { type: 'boolean', short: 'v' },
  };
  for (const [name, flag] of Object.entries(FLAGS)) {
    options[name] = { type: 'string', ...(flag.short ? { short: flag.short } : {}) };
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new ConfigError(`${error instanceof Error ? error.message : String(error)} (see --help)`);
  }
  const overrides: Partial<Record<VariableName, string>> = {};
  for (const [name, flag] of Object.entries(FLAGS)) {
    const value = parsed.values[name];
    if (typeof value === 'string') overrides[flag.variable] = value;
  }
  const [first, second, ...extra] = parsed.positionals;
  if (parsed.values.help) return { command: 'help', subcommand: undefined, overrides };
  if (parsed.values.version) return { command: 'version', subcommand: undefined, overrides };
  if (first === undefined || first === 'serve') {
    if (second !== undefined)
      throw new ConfigError(`unexpected argument ${JSON.stringify(second)} (see --help)`);
    return { command: 'serve', subcommand: undefined, overrides };
  }
  if (first === 'help') return { command: 'help', subcommand: undefined, overrides };
  if (first === 'ca') {
    if (!second || !['print', 'fingerprint', 'rotate'].includes(second) || extra.length > 0) {
      throw new ConfigError('usage: drp-server ca print|fingerprint|rotate');
    }
    return { command: 'ca', subcommand: second, overrides };
  }
  throw new ConfigError(`unknown command ${JSON.stringify(first)} (see --help)`);
}
