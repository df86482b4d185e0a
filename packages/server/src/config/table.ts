/**
 * Every variable of the daemon, one row each: its default, its flag, its parser and its doc
 * line. The one place defaults live: where a variable maps onto a core option, the default is
 * core's (DEFAULTS in @drp/core), and so is the check of the value. `--help` is printed from
 * this table and a test checks docs/configuration.md against it.
 *
 * Defaults are the text a variable would hold, so the same parser reads defaults and input.
 */
import { DEFAULTS as CORE, parseDuration } from '@drp/core';
import { workerCount } from '../cluster/count.js';
import * as p from './parsers.js';

export interface Flag {
  readonly name: string;
  readonly short?: string;
  readonly help: string;
}

export interface Row<T, D extends string | undefined> {
  readonly default: D;
  readonly doc: string;
  readonly parse: p.Parser<T>;
  readonly flag?: Flag;
  /** Never echoed in an error. */
  readonly secret?: true;
  /** Empty means an empty list, not unset. */
  readonly emptyIsValue?: true;
}

function row<T, D extends string | undefined>(spec: Row<T, D>): Row<T, D> {
  return Object.freeze(spec);
}

const trimmed = (value: string) => value.trim();
const ms = (value: string) => parseDuration(value) ?? 0;
/** A core duration of `upstream`, read as milliseconds. */
const upstreamMs = (option: 'connectTimeout' | 'responseTimeout' | 'readTimeout' | 'staleTimeout') =>
  p.checkedByCore((v) => ({ upstream: { [option]: v } }), ms);
const manifestTier = (option: 'primaryTime' | 'secondaryTime' | 'defaultTime') =>
  p.checkedByCore((v) => ({ manifestCache: { [option]: v } }), trimmed);
const manifestRegex = (option: 'primaryRegex' | 'secondaryRegex') =>
  p.checkedByCore(
    (v) => ({ manifestCache: { [option]: v } }),
    (v) => v,
  );
const mc = CORE.manifestCache;

export const VARIABLES = Object.freeze({
  // --- the original's variables (same names, same defaults) ---
  REGISTRIES: row({
    default: 'registry.k8s.io gcr.io quay.io ghcr.io',
    doc: 'hosts to intercept, spaces or commas (`host` = port 443, `host:port`, `host:*`, `*.domain`)',
    parse: p.registries,
    flag: { name: 'registries', short: 'r', help: 'hosts to intercept, e.g. "ghcr.io,*.example.com"' },
    emptyIsValue: true,
  }),
  AUTH_REGISTRIES: row({
    default: '',
    doc: '`host:user:password` entries injected for clients that send no credentials',
    parse: p.text,
    secret: true,
    emptyIsValue: true,
  }),
  AUTH_REGISTRIES_DELIMITER: row({ default: ' ', doc: 'between AUTH_REGISTRIES entries', parse: p.text }),
  AUTH_REGISTRY_DELIMITER: row({ default: ':', doc: 'between host, user and password', parse: p.text }),
  ENABLE_MANIFEST_CACHE: row({
    default: String(mc.enabled),
    doc: 'cache tag manifests by tier',
    parse: p.flag,
    flag: { name: 'manifest-cache', help: 'cache tag manifests by tier (true/false)' },
  }),
  MANIFEST_CACHE_PRIMARY_REGEX: row({
    default: mc.primaryRegex,
    doc: 'tags of the primary tier',
    parse: manifestRegex('primaryRegex'),
  }),
  MANIFEST_CACHE_PRIMARY_TIME: row({
    default: mc.primaryTime,
    doc: 'how long primary tags are cached',
    parse: manifestTier('primaryTime'),
  }),
  MANIFEST_CACHE_SECONDARY_REGEX: row({
    default: mc.secondaryRegex,
    doc: 'tags of the secondary tier',
    parse: manifestRegex('secondaryRegex'),
  }),
  MANIFEST_CACHE_SECONDARY_TIME: row({
    default: mc.secondaryTime,
    doc: 'how long secondary tags are cached',
    parse: manifestTier('secondaryTime'),
  }),
  MANIFEST_CACHE_DEFAULT_TIME: row({
    default: mc.defaultTime,
    doc: 'how long every other tag is cached',
    parse: manifestTier('defaultTime'),
  }),
  CACHE_MAX_SIZE: row({
    default: CORE.maxSize,
    doc: 'LRU cap on the whole cache, nginx sizes (k, m, g, t)',
    parse: p.checkedByCore((v) => ({ maxSize: v }), trimmed),
    flag: { name: 'cache-max-size', help: 'cache size cap, e.g. 32g' },
  }),
  CACHE_INACTIVE: row({
    default: CORE.inactive,
    doc: 'entries not read for this long are removed',
    parse: p.checkedByCore((v) => ({ inactive: v }), trimmed),
  }),
  CACHE_SCRUB_INTERVAL: row({
    default: '24h',
    doc: 're-hash every stored entry this often and remove corrupt ones; 0: never',
    parse: p.durationMs,
  }),
  ALLOW_PUSH: row({
    default: String(CORE.allowPush),
    doc: 'let pushes through to intercepted registries',
    parse: p.flag,
    flag: { name: 'allow-push', help: 'let pushes through (true/false)' },
  }),
  PROXY_REQUEST_BUFFERING: row({
    default: 'true',
    doc: 'accepted for compatibility; drp always streams request bodies',
    parse: p.flag,
  }),
  VERIFY_SSL: row({ default: String(CORE.upstream.verifyTls), doc: 'verify upstream TLS', parse: p.flag }),
  DEBUG: row({
    default: 'false',
    doc: '`true`: every `drp:*` debug namespace; anything else but `false`: a namespace list',
    parse: p.debugNamespaces,
  }),
  DEBUG_HUB: row({ default: 'false', doc: '`true`: the `drp:upstream*` namespaces', parse: p.flag }),
  DEBUG_NGINX: row({ default: 'false', doc: '`true`: every `drp:*` namespace', parse: p.flag }),
  SEND_TIMEOUT: row({
    default: '60s',
    doc: 'client stops reading the response for this long: connection closed',
    parse: p.durationMs,
  }),
  CLIENT_BODY_TIMEOUT: row({
    default: '60s',
    doc: 'client stops sending a request body for this long: connection closed',
    parse: p.durationMs,
  }),
  CLIENT_HEADER_TIMEOUT: row({
    default: '60s',
    doc: 'time allowed to send request headers',
    parse: p.durationMs,
  }),
  KEEPALIVE_TIMEOUT: row({
    default: '300s',
    doc: 'idle keep-alive connections are closed after this long',
    parse: p.durationMs,
  }),
  PROXY_READ_TIMEOUT: row({
    default: CORE.upstream.readTimeout,
    doc: 'longest silence while reading an upstream body',
    parse: upstreamMs('readTimeout'),
  }),
  PROXY_CONNECT_TIMEOUT: row({
    default: CORE.upstream.connectTimeout,
    doc: 'upstream TCP + TLS connect',
    parse: upstreamMs('connectTimeout'),
  }),
  PROXY_SEND_TIMEOUT: row({
    default: CORE.upstream.responseTimeout,
    doc: 'time upstream may take to answer a request it was sent (until response headers)',
    parse: upstreamMs('responseTimeout'),
  }),
  PROXY_CONNECT_READ_TIMEOUT: row({
    default: '60s',
    doc: 'raw tunnels idle for the longer of this and PROXY_CONNECT_SEND_TIMEOUT are closed',
    parse: p.durationMs,
  }),
  PROXY_CONNECT_CONNECT_TIMEOUT: row({
    default: '60s',
    doc: 'connecting a raw tunnel or a forwarded plain-HTTP request',
    parse: p.durationMs,
  }),
  PROXY_CONNECT_SEND_TIMEOUT: row({
    default: '60s',
    doc: 'see PROXY_CONNECT_READ_TIMEOUT',
    parse: p.durationMs,
  }),
  DISABLE_IPV6: row({
    default: 'false',
    doc: 'resolve upstream names and tunnel targets to IPv4 only; listen on IPv4 only',
    parse: p.flag,
  }),
  CA_KEY_FILE: row({
    default: undefined,
    doc: 'bring your own CA: its key (with CA_CRT_FILE)',
    parse: p.text,
  }),
  CA_CRT_FILE: row({
    default: undefined,
    doc: 'bring your own CA: its certificate (with CA_KEY_FILE)',
    parse: p.text,
  }),
  CA_SRL_FILE: row({
    default: undefined,
    doc: 'accepted and ignored (drp issues random serials)',
    parse: p.text,
  }),

  // --- drp's own ---
  PORT: row({
    default: '3128',
    doc: 'listen port; 0 picks a free one',
    parse: p.listenPort,
    flag: { name: 'port', short: 'p', help: 'listen port (0 picks a free one)' },
  }),
  BIND: row({
    default: '::',
    doc: 'listen address; `::` is every interface (0.0.0.0 without IPv6)',
    parse: p.bindAddress,
    flag: { name: 'bind', short: 'b', help: 'listen address, e.g. 127.0.0.1, ::, 0.0.0.0' },
  }),
  CACHE_DIR: row({
    default: undefined,
    doc: 'the cache; /docker_mirror_cache in the container image, ./.drp/cache elsewhere',
    parse: p.text,
    flag: { name: 'cache-dir', help: 'cache directory' },
  }),
  CA_DIR: row({
    default: undefined,
    doc: 'ca.crt + ca.key; /ca in the container image, ./.drp/ca elsewhere',
    parse: p.text,
    flag: { name: 'ca-dir', help: 'CA directory (ca.crt + ca.key)' },
  }),
  CA_KEY_PASSPHRASE: row({
    default: undefined,
    doc: 'passphrase of the CA key',
    parse: p.text,
    secret: true,
  }),
  UPSTREAM_CA_FILE: row({
    default: undefined,
    doc: "extra PEM bundle trusted for upstream TLS, on top of Node's",
    parse: p.readableFile,
    flag: { name: 'upstream-ca-file', help: 'extra PEM bundle for upstream TLS' },
  }),
  UPSTREAM_MAPPINGS: row({
    default: '',
    doc: 'space-separated `host[:port]=address[:port]`: connect elsewhere for a name',
    parse: p.mappings,
    flag: { name: 'upstream-mappings', help: "'host[:port]=address[:port] ...'" },
    emptyIsValue: true,
  }),
  LOG_FORMAT: row({
    default: 'json',
    doc: 'access log format on stdout: json or text',
    parse: p.logFormat,
    flag: { name: 'log-format', help: 'json or text' },
  }),
  METRICS: row({
    default: 'true',
    doc: 'Prometheus metrics at /metrics',
    parse: p.flag,
    flag: { name: 'metrics', help: 'serve /metrics (true/false)' },
  }),
  VERIFY_BLOB_ACCESS: row({
    default: CORE.verifyBlobAccess,
    doc: 'who must prove with an upstream HEAD that it may read cached content: private, all or off',
    parse: p.accessMode,
  }),
  UPSTREAM_STALE_TIMEOUT: row({
    default: CORE.upstream.staleTimeout,
    doc: 'with a stale answer at hand: wait this long for upstream, then serve it',
    parse: upstreamMs('staleTimeout'),
  }),
  SHUTDOWN_TIMEOUT: row({
    default: '30s',
    doc: 'SIGTERM/SIGINT: how long in-flight transfers may take to finish',
    parse: p.durationMs,
  }),
  WORKERS: row({
    default: '1',
    doc: 'processes serving the one port (node:cluster), each with its own event loop; `auto`: one per CPU',
    parse: workerCount,
    flag: { name: 'workers', help: 'worker processes, a number or auto' },
  }),

  // --- admission and egress (docs/security.md) ---
  ALLOWED_CLIENTS: row({
    default: '127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7,fe80::/10',
    doc: 'CIDRs that may use the proxy (CONNECT, absolute-form, mirror, endpoints); `all`: anyone',
    parse: p.clients,
  }),
  PROXY_AUTH: row({
    default: undefined,
    doc: '`user:password` required as Proxy-Authorization',
    parse: p.userPassword,
    secret: true,
  }),
  PROXY_AUTH_FILE: row({
    default: undefined,
    doc: 'htpasswd file of bcrypt entries, used like PROXY_AUTH',
    parse: p.htpasswdFile,
  }),
  TUNNEL_PORTS: row({
    default: '443',
    doc: 'ports non-intercepted CONNECT tunnels may reach, plus REGISTRIES ports; `*`: any',
    parse: p.ports,
  }),
  BLOCKED_DESTINATIONS: row({
    default: '127.0.0.0/8,::1/128,0.0.0.0/8,169.254.0.0/16,fe80::/10',
    doc: "CIDRs nothing may connect to (plus, by default, the proxy's own addresses)",
    parse: p.cidrs,
    emptyIsValue: true,
  }),
  UPSTREAM_PROXY: row({
    default: undefined,
    doc: "`http://[user:password@]host:port` for drp's own upstream connections",
    parse: p.upstreamProxy,
    secret: true,
  }),
  UPSTREAM_NO_PROXY: row({
    default: '',
    doc: "hosts reached without UPSTREAM_PROXY, curl's NO_PROXY rules",
    parse: p.noProxy,
    emptyIsValue: true,
  }),
  MIRROR_DEFAULT_REGISTRY: row({
    default: 'docker.io',
    doc: 'mirror mode: the registry of a `/v2/...` request that names none',
    parse: p.registryHost,
  }),
  MIRROR_TLS_PORT: row({
    default: undefined,
    doc: 'also serve mirror mode over TLS on this port',
    parse: p.listenPort,
  }),
});

export type VariableName = keyof typeof VARIABLES;

/** The parsed value of each variable; undefined only where the default is unset. */
export type Values = {
  [K in VariableName]: (typeof VARIABLES)[K] extends Row<infer T, infer D>
    ? D extends string
      ? T
      : T | undefined
    : never;
};

/** Every default, as text, derived from the table. */
export const DEFAULTS = Object.freeze(
  Object.fromEntries(Object.entries(VARIABLES).map(([name, spec]) => [name, spec.default])),
) as { readonly [K in VariableName]: (typeof VARIABLES)[K]['default'] };

export interface FlagSpec {
  readonly short: string | undefined;
  readonly variable: VariableName;
  readonly help: string;
}

/** Command-line flags and the variable each one sets, derived from the table. */
export const FLAGS: Readonly<Record<string, FlagSpec>> = Object.freeze(
  Object.fromEntries(
    (Object.entries(VARIABLES) as [VariableName, Row<unknown, string | undefined>][]).flatMap(
      ([variable, spec]) =>
        spec.flag
          ? [[spec.flag.name, Object.freeze({ short: spec.flag.short, variable, help: spec.flag.help })]]
          : [],
    ),
  ),
);
