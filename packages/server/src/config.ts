/**
 * The daemon's configuration: every environment variable of the original
 * (rpardini/docker-registry-proxy) with the same meaning and default, drp's own additions, and
 * command-line flags for the common ones. Precedence: typed values (the embedding API) > flags
 * > environment > defaults. The variables, their defaults, flags, parsers and doc lines are one
 * table (config/table.ts); the cache's values are checked by core's own option resolution.
 *
 * Read and validated once, at start; the result (DaemonOptions) is deep-frozen. A bad value is
 * a ConfigError (code DRP_SERVER_CONFIG_INVALID) whose message names the variable (or flag) and
 * the expected form; a value that may hold a secret is never echoed.
 */
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { type AccessCheckMode, parseAuthRegistries, type RegistryCredential } from '@drp/core';
import type { ParseContext } from './config/parsers.js';
import { FLAGS, type Row, VARIABLES, type Values, type VariableName } from './config/table.js';
import { BadFile, ConfigError, Expected } from './errors.js';
import type { ProxyUser } from './front/proxy-auth.js';
import type { InterceptRule } from './registries.js';

export { DEFAULTS, FLAGS, type FlagSpec, VARIABLES, type Values, type VariableName } from './config/table.js';
export { ConfigError } from './errors.js';
export { type InterceptRule, isIntercepted } from './registries.js';

/** Hosts that are always intercepted, whatever REGISTRIES says (Docker Hub). */
export const ALWAYS_INTERCEPTED = Object.freeze(['registry-1.docker.io', 'auth.docker.io']);

/** Where the container image keeps its volumes; their presence selects the container defaults. */
export const CONTAINER_CACHE_DIR = '/docker_mirror_cache';
export const CONTAINER_CA_DIR = '/ca';

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

/** The daemon's options: one typed, validated, deep-frozen object. */
export interface DaemonOptions {
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
  /** WORKERS: processes serving the port (1: this process alone, no cluster). */
  readonly workers: number;
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

/** The former name of DaemonOptions. */
export type ServerConfig = DaemonOptions;

export interface LoadConfigInput {
  /** Environment variables (default process.env). */
  env?: Readonly<Record<string, string | undefined>>;
  /** Flags already parsed into variable values (see parseFlags). They win over `env`. */
  overrides?: Readonly<Partial<Record<VariableName, string>>>;
  /** Typed values (the embedding API, startProxy): they win over flags and `env`, unparsed. */
  values?: Readonly<Partial<Values>>;
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

function shown(spec: Row<unknown, string | undefined>, value: string): string {
  return spec.secret ? '<redacted>' : JSON.stringify(value.length > 200 ? `${value.slice(0, 200)}…` : value);
}

function flagFor(variable: VariableName): string {
  const entry = Object.entries(FLAGS).find(([, f]) => f.variable === variable);
  return entry ? `--${entry[0]}` : variable;
}

/** One variable through its parser; a bad value becomes a ConfigError naming it. */
function parseOne(name: VariableName, text: string, viaFlag: boolean, context: ParseContext): unknown {
  const spec = VARIABLES[name] as Row<unknown, string | undefined>;
  try {
    return spec.parse(text, context);
  } catch (error) {
    const label = viaFlag ? `${flagFor(name)} (${name})` : name;
    if (error instanceof BadFile) throw new ConfigError(`invalid ${label} ${error.detail}`);
    if (!(error instanceof Expected)) throw error;
    const got = error.showsValue ? '' : `, got ${shown(spec, text)}`;
    throw new ConfigError(`invalid ${label}: expected ${error.expected}${got}`);
  }
}

interface ReadValues {
  readonly values: Values;
  /** Which variables the user set (environment, flag or typed value). */
  readonly explicit: readonly VariableName[];
}

/** Every variable of the table: typed value, else flag, else environment, else default. */
function readValues(input: LoadConfigInput, context: ParseContext): ReadValues {
  const env = input.env ?? process.env;
  const overrides = input.overrides ?? {};
  const typed = input.values ?? {};
  const values: Record<string, unknown> = {};
  const explicit: VariableName[] = [];
  for (const name of Object.keys(VARIABLES) as VariableName[]) {
    const spec = VARIABLES[name] as Row<unknown, string | undefined>;
    if (typed[name] !== undefined) {
      values[name] = typed[name];
      explicit.push(name);
      continue;
    }
    const fromFlag = overrides[name];
    let text = fromFlag ?? env[name];
    if (text !== undefined && text.trim() === '' && !spec.emptyIsValue) text = undefined;
    if (text !== undefined) explicit.push(name);
    text ??= spec.default;
    values[name] = text === undefined ? undefined : parseOne(name, text, fromFlag !== undefined, context);
  }
  return { values: values as Values, explicit };
}

/** Freezes `value` and everything reachable from it. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}

/** Reads, validates and deep-freezes the configuration. Throws ConfigError. */
export function loadConfig(input: LoadConfigInput = {}): DaemonOptions {
  const cwd = input.cwd ?? process.cwd();
  const { values: v, explicit } = readValues(input, { cwd });
  const inContainer = input.inContainer ?? isDirectory(CONTAINER_CACHE_DIR);
  const isSet = (name: VariableName) => explicit.includes(name);
  const config: DaemonOptions = {
    port: v.PORT,
    bind: v.DISABLE_IPV6 && !isSet('BIND') ? '0.0.0.0' : v.BIND,
    cacheDir: resolve(cwd, v.CACHE_DIR ?? (inContainer ? CONTAINER_CACHE_DIR : '.drp/cache')),
    caDir: resolve(cwd, v.CA_DIR ?? (inContainer ? CONTAINER_CA_DIR : '.drp/ca')),
    caFiles: caFilesOf(v, cwd),
    caPassphrase: v.CA_KEY_PASSPHRASE,
    registries: withAlwaysIntercepted(v.REGISTRIES),
    credentials: parseCredentials(v.AUTH_REGISTRIES, v.AUTH_REGISTRIES_DELIMITER, v.AUTH_REGISTRY_DELIMITER),
    manifestCache: {
      enabled: v.ENABLE_MANIFEST_CACHE,
      primaryRegex: v.MANIFEST_CACHE_PRIMARY_REGEX,
      primaryTime: v.MANIFEST_CACHE_PRIMARY_TIME,
      secondaryRegex: v.MANIFEST_CACHE_SECONDARY_REGEX,
      secondaryTime: v.MANIFEST_CACHE_SECONDARY_TIME,
      defaultTime: v.MANIFEST_CACHE_DEFAULT_TIME,
    },
    maxSize: v.CACHE_MAX_SIZE,
    inactive: v.CACHE_INACTIVE,
    scrubIntervalMs: v.CACHE_SCRUB_INTERVAL,
    allowPush: v.ALLOW_PUSH,
    verifyBlobAccess: v.VERIFY_BLOB_ACCESS,
    verifyTls: v.VERIFY_SSL,
    upstreamCaFile: v.UPSTREAM_CA_FILE,
    upstreamMappings: v.UPSTREAM_MAPPINGS,
    upstreamProxy: v.UPSTREAM_PROXY,
    upstreamNoProxy: v.UPSTREAM_NO_PROXY,
    mirrorDefaultRegistry: v.MIRROR_DEFAULT_REGISTRY,
    mirrorTlsPort: v.MIRROR_TLS_PORT,
    disableIpv6: v.DISABLE_IPV6,
    timeouts: timeoutsOf(v),
    logFormat: v.LOG_FORMAT,
    metrics: v.METRICS,
    workers: v.WORKERS,
    allowedClients: v.ALLOWED_CLIENTS,
    proxyUsers: [...(v.PROXY_AUTH ? [v.PROXY_AUTH] : []), ...(v.PROXY_AUTH_FILE ?? [])],
    tunnelPorts: v.TUNNEL_PORTS,
    blockedDestinations: v.BLOCKED_DESTINATIONS,
    blockOwnAddresses: !isSet('BLOCKED_DESTINATIONS'),
    debugNamespaces: debugOf(v),
    compat: { proxyRequestBuffering: v.PROXY_REQUEST_BUFFERING, caSerialFile: v.CA_SRL_FILE },
    explicit,
  };
  return deepFreeze(config);
}

function caFilesOf(v: Values, cwd: string): DaemonOptions['caFiles'] {
  if ((v.CA_CRT_FILE === undefined) !== (v.CA_KEY_FILE === undefined)) {
    throw new ConfigError(
      `invalid ${v.CA_CRT_FILE === undefined ? 'CA_CRT_FILE' : 'CA_KEY_FILE'}: CA_CRT_FILE and CA_KEY_FILE must be set together (or neither, to use CA_DIR)`,
    );
  }
  if (v.CA_CRT_FILE === undefined || v.CA_KEY_FILE === undefined) return undefined;
  return { certFile: resolve(cwd, v.CA_CRT_FILE), keyFile: resolve(cwd, v.CA_KEY_FILE) };
}

function withAlwaysIntercepted(rules: readonly InterceptRule[]): InterceptRule[] {
  const all = rules.map((r) => ({ ...r }));
  for (const host of ALWAYS_INTERCEPTED) {
    if (!all.some((r) => r.host === host && r.port === undefined)) all.push({ host, port: undefined });
  }
  return all;
}

function timeoutsOf(v: Values): Timeouts {
  return {
    sendMs: v.SEND_TIMEOUT,
    clientBodyMs: v.CLIENT_BODY_TIMEOUT,
    clientHeaderMs: v.CLIENT_HEADER_TIMEOUT,
    keepAliveMs: v.KEEPALIVE_TIMEOUT,
    proxyReadMs: v.PROXY_READ_TIMEOUT,
    proxyConnectMs: v.PROXY_CONNECT_TIMEOUT,
    proxySendMs: v.PROXY_SEND_TIMEOUT,
    upstreamStaleMs: v.UPSTREAM_STALE_TIMEOUT,
    tunnelIdleMs: Math.max(v.PROXY_CONNECT_READ_TIMEOUT, v.PROXY_CONNECT_SEND_TIMEOUT),
    tunnelConnectMs: v.PROXY_CONNECT_CONNECT_TIMEOUT,
    shutdownMs: v.SHUTDOWN_TIMEOUT,
  };
}

function debugOf(v: Values): string | undefined {
  const namespaces = [
    v.DEBUG,
    v.DEBUG_HUB ? 'drp:upstream*' : undefined,
    v.DEBUG_NGINX ? 'drp:*' : undefined,
  ].filter((n): n is string => n !== undefined);
  return namespaces.length > 0 ? namespaces.join(',') : undefined;
}

/** AUTH_REGISTRIES through core's parser; its messages never contain a user name or password. */
function parseCredentials(
  value: string,
  entryDelimiter: string,
  fieldDelimiter: string,
): RegistryCredential[] {
  try {
    return parseAuthRegistries(value, { entryDelimiter, fieldDelimiter });
  } catch (error) {
    throw new ConfigError(error instanceof Error ? error.message : 'invalid AUTH_REGISTRIES');
  }
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
