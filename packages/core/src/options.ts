/**
 * Options of a registry cache: the one place where defaults live. Validated once, when
 * `createRegistryCache()` is called, then frozen; nothing re-reads or re-checks them later.
 */

import { DrpError } from './api/errors.js';
import { createDestinationGuard, type DestinationGuard } from './net/destination-guard.js';
import type { AccessCheckMode } from './store/content-kind.js';
import { parseDuration, parseSize } from './units.js';
import {
  type MappingError,
  type MappingTable,
  type ParsedMappings,
  parseMappings,
} from './upstream/mappings.js';
import { type NoProxy, parseNoProxy, parseUpstreamProxy, type UpstreamProxy } from './upstream/proxy.js';
import { parseHostPort } from './upstream/target.js';

/** A size in bytes, or nginx-style text such as `32g`. */
export type SizeOption = number | string;
/** A duration in milliseconds, or nginx-style text such as `60d` or `1h30m`. */
export type DurationOption = number | string;

export interface ManifestCacheOptions {
  /** Cache tag manifests by tier (the original's `ENABLE_MANIFEST_CACHE`). Default false. */
  enabled?: boolean;
  /** Regex fragment tested unanchored against the tag. Default `(stable|nightly|production|test)`. */
  primaryRegex?: string;
  /** Default `10m`. */
  primaryTime?: DurationOption;
  /** Default `(.*)(\d|\.)+(.*)(\d|\.)+(.*)(\d|\.)+` (three or more digits or dots). */
  secondaryRegex?: string;
  /** Default `60d`. */
  secondaryTime?: DurationOption;
  /** Every other tag, e.g. `latest`. Default `1h`. */
  defaultTime?: DurationOption;
}

export interface RegistryCredential {
  /** The host the credentials are sent to: the registry, or its auth host (`auth.docker.io`). */
  host: string;
  username: string;
  password: string;
}

export interface UpstreamOptions {
  /**
   * Connect to another address for a host: `{ 'registry.local:5000': '10.0.0.5:5000' }`.
   * Keys are `host` or `host:port`; TLS still verifies the original name.
   */
  mappings?: Record<string, string>;
  /** Extra PEM certificates trusted for upstream TLS, added to Node's bundle. */
  caCertificates?: string | readonly string[];
  /** Verify upstream TLS certificates. Default true (the original's `VERIFY_SSL`). */
  verifyTls?: boolean;
  /** Resolve upstream names to this IP family only (the original's `DISABLE_IPV6` -> 4). */
  ipFamily?: 4 | 6;
  /** Time to establish TCP (and TLS). Default `60s`. */
  connectTimeout?: DurationOption;
  /** Time from request sent to response headers. Default `60s`. */
  responseTimeout?: DurationOption;
  /** Longest silence while reading a body; never a cap on a whole download. Default `900s`. */
  readTimeout?: DurationOption;
  /**
   * When a stale answer is at hand (an expired tag, a remembered ping), how long upstream may
   * take to answer before the stale one is served instead. Default `5s`; 0 waits the whole
   * `responseTimeout`.
   */
  staleTimeout?: DurationOption;
  /** Redirect hops followed for GET and HEAD (S3, CDN). Default 10. */
  maxRedirects?: number;
  /**
   * CIDR ranges never connected to, checked on the resolved address at connect time (every
   * fetch and redirect hop). Default none: the daemon sets BLOCKED_DESTINATIONS.
   */
  blockedDestinations?: readonly string[];
  /** Names exempt from `blockedDestinations` (`host`, `host:port`, `host:*`); mapped hosts always are. */
  exemptDestinations?: readonly string[];
  /**
   * An HTTP proxy every upstream connection (registries, token servers, redirect targets) goes
   * through with CONNECT: `http://[user:password@]host:port`. TLS stays end to end. Default none;
   * the process's HTTPS_PROXY / HTTP_PROXY are never read.
   */
  proxy?: string;
  /** Hosts reached directly despite `proxy`, with curl's NO_PROXY rules (`a.example,.corp,10.0.0.0/8`). */
  noProxy?: string;
}

export interface RegistryCacheOptions {
  /** Directory of the content-addressed store. Required. */
  cacheDir: string;
  /** LRU cap on the whole cache (`CACHE_MAX_SIZE`). Default `32g`. */
  maxSize?: SizeOption;
  /** Entries not read for this long are removed (`CACHE_INACTIVE`). Default `60d`. */
  inactive?: DurationOption;
  manifestCache?: ManifestCacheOptions;
  /** Credentials injected for clients that send none (`AUTH_REGISTRIES`). */
  credentials?: readonly RegistryCredential[];
  /** Let push methods through to intercepted registries (`ALLOW_PUSH`). Default false. */
  allowPush?: boolean;
  /**
   * Who must prove with an upstream HEAD (its own credentials; remembered a minute per
   * registry, repository, digest and credentials) that it may read cached content by digest,
   * blob or manifest, before getting it (see store/content-kind.ts):
   * `private` (default): content first fetched with another client's own credentials;
   * `all`: any content this client did not fetch itself; `off`: nobody (the original).
   * `true` and `false` mean `all` and `off`.
   */
  verifyBlobAccess?: boolean | AccessCheckMode;
  upstream?: UpstreamOptions;
  /** Clock, for tests of expiry. Default `Date.now`. */
  now?: () => number;
}

export interface ResolvedManifestCache {
  readonly enabled: boolean;
  readonly primary: { readonly regex: RegExp; readonly source: string; readonly ttlMs: number };
  readonly secondary: { readonly regex: RegExp; readonly source: string; readonly ttlMs: number };
  readonly defaultTtlMs: number;
}

export interface ResolvedUpstream {
  readonly mappings: MappingTable;
  readonly caCertificates: readonly string[];
  readonly verifyTls: boolean;
  readonly ipFamily: 4 | 6 | undefined;
  readonly connectTimeoutMs: number;
  readonly responseTimeoutMs: number;
  readonly readTimeoutMs: number;
  readonly staleTimeoutMs: number;
  readonly maxRedirects: number;
  readonly destinations: DestinationGuard;
  readonly proxy: UpstreamProxy | undefined;
  readonly noProxy: NoProxy;
}

export interface ResolvedOptions {
  readonly cacheDir: string;
  readonly maxSizeBytes: number;
  readonly inactiveMs: number;
  readonly manifestCache: ResolvedManifestCache;
  readonly credentials: ReadonlyMap<string, { readonly username: string; readonly password: string }>;
  readonly allowPush: boolean;
  readonly verifyBlobAccess: AccessCheckMode;
  readonly upstream: ResolvedUpstream;
  readonly now: () => number;
}

/** Every default, in one place. The daemon's environment variables map onto these. */
export const DEFAULTS = Object.freeze({
  maxSize: '32g',
  inactive: '60d',
  manifestCache: Object.freeze({
    enabled: false,
    primaryRegex: '(stable|nightly|production|test)',
    primaryTime: '10m',
    secondaryRegex: '(.*)(\\d|\\.)+(.*)(\\d|\\.)+(.*)(\\d|\\.)+',
    secondaryTime: '60d',
    defaultTime: '1h',
  }),
  allowPush: false,
  verifyBlobAccess: 'private' as AccessCheckMode,
  upstream: Object.freeze({
    verifyTls: true,
    connectTimeout: '60s',
    responseTimeout: '60s',
    readTimeout: '900s',
    staleTimeout: '5s',
    maxRedirects: 10,
    blockedDestinations: Object.freeze([] as string[]),
  }),
});

function invalid(option: string, expected: string, got: unknown): DrpError {
  const shown = typeof got === 'string' ? JSON.stringify(got) : String(got);
  return new DrpError('DRP_CONFIG_INVALID', `invalid option ${option}: expected ${expected}, got ${shown}`, {
    detail: { option, expected },
  });
}

function size(option: string, value: SizeOption): number {
  const bytes = typeof value === 'number' ? value : parseSize(value);
  if (bytes === undefined || !Number.isFinite(bytes) || bytes < 0) {
    throw invalid(option, 'a size such as 512m or 32g', value);
  }
  return bytes;
}

function duration(option: string, value: DurationOption): number {
  const ms = typeof value === 'number' ? value : parseDuration(value);
  if (ms === undefined || !Number.isFinite(ms) || ms < 0) {
    throw invalid(option, 'a duration such as 10m, 1h or 60d', value);
  }
  return ms;
}

/** The original applies tier regexes with nginx `~` (PCRE, unanchored at the end). */
function tierRegex(option: string, source: string): RegExp {
  try {
    return new RegExp(`^${source}`);
  } catch {
    throw invalid(option, 'a valid regular expression', source);
  }
}

function accessMode(value: unknown): AccessCheckMode {
  if (value === true) return 'all';
  if (value === false) return 'off';
  if (value === 'private' || value === 'all' || value === 'off') return value;
  throw invalid('verifyBlobAccess', 'private, all or off', value);
}

export function resolveOptions(options: RegistryCacheOptions): ResolvedOptions {
  if (!options || typeof options.cacheDir !== 'string' || options.cacheDir === '') {
    throw invalid('cacheDir', 'a directory path', options?.cacheDir);
  }
  const mc = { ...DEFAULTS.manifestCache, ...options.manifestCache };
  const up = { ...DEFAULTS.upstream, ...options.upstream };

  let mapped: ParsedMappings;
  try {
    mapped = parseMappings(up.mappings ?? {});
  } catch (error) {
    const e = error as MappingError;
    throw invalid('upstream.mappings', e.message, e.entry);
  }
  const { table: mappings, names: mappedNames } = mapped;

  const credentials = new Map<string, { username: string; password: string }>();
  for (const [i, entry] of (options.credentials ?? []).entries()) {
    const where = `credentials[${i}]`;
    if (!entry || typeof entry.host !== 'string' || !parseHostPort(entry.host)) {
      throw invalid(`${where}.host`, 'a registry host', '<redacted entry>');
    }
    if (typeof entry.username !== 'string' || entry.username === '') {
      throw new DrpError('DRP_CONFIG_INVALID', `invalid option ${where}: username is empty`);
    }
    if (typeof entry.password !== 'string' || entry.password === '') {
      throw new DrpError('DRP_CONFIG_INVALID', `invalid option ${where}: password is empty`);
    }
    credentials.set(entry.host.toLowerCase(), { username: entry.username, password: entry.password });
  }

  const ca = up.caCertificates === undefined ? [] : [up.caCertificates].flat();
  if (up.ipFamily !== undefined && up.ipFamily !== 4 && up.ipFamily !== 6) {
    throw invalid('upstream.ipFamily', '4 or 6', up.ipFamily);
  }
  if (!Number.isInteger(up.maxRedirects) || up.maxRedirects < 0) {
    throw invalid('upstream.maxRedirects', 'a non-negative integer', up.maxRedirects);
  }
  const proxy = up.proxy === undefined || up.proxy.trim() === '' ? undefined : parseUpstreamProxy(up.proxy);
  // The URL may carry a password: never echoed.
  if (typeof proxy === 'string') throw invalid('upstream.proxy', proxy, '<redacted>');
  const noProxy = parseNoProxy(up.noProxy ?? '');
  if (typeof noProxy === 'string') throw invalid('upstream.noProxy', noProxy, up.noProxy);

  let destinations: DestinationGuard;
  try {
    // A mapping is the operator naming where a host lives: that name is exempt, on its ports.
    destinations = createDestinationGuard({
      blocked: up.blockedDestinations ?? [],
      exempt: [...(up.exemptDestinations ?? []), ...mappedNames],
    });
  } catch (error) {
    throw invalid('upstream.blockedDestinations', 'CIDR ranges', (error as Error).message);
  }

  return Object.freeze({
    cacheDir: options.cacheDir,
    maxSizeBytes: size('maxSize', options.maxSize ?? DEFAULTS.maxSize),
    inactiveMs: duration('inactive', options.inactive ?? DEFAULTS.inactive),
    manifestCache: Object.freeze({
      enabled: Boolean(mc.enabled),
      primary: {
        regex: tierRegex('manifestCache.primaryRegex', mc.primaryRegex),
        source: mc.primaryRegex,
        ttlMs: duration('manifestCache.primaryTime', mc.primaryTime),
      },
      secondary: {
        regex: tierRegex('manifestCache.secondaryRegex', mc.secondaryRegex),
        source: mc.secondaryRegex,
        ttlMs: duration('manifestCache.secondaryTime', mc.secondaryTime),
      },
      defaultTtlMs: duration('manifestCache.defaultTime', mc.defaultTime),
    }),
    credentials,
    allowPush: Boolean(options.allowPush ?? DEFAULTS.allowPush),
    verifyBlobAccess: accessMode(options.verifyBlobAccess ?? DEFAULTS.verifyBlobAccess),
    upstream: Object.freeze({
      mappings,
      caCertificates: ca,
      verifyTls: up.verifyTls !== false,
      ipFamily: up.ipFamily,
      connectTimeoutMs: duration('upstream.connectTimeout', up.connectTimeout),
      responseTimeoutMs: duration('upstream.responseTimeout', up.responseTimeout),
      readTimeoutMs: duration('upstream.readTimeout', up.readTimeout),
      staleTimeoutMs: duration('upstream.staleTimeout', up.staleTimeout),
      maxRedirects: up.maxRedirects,
      destinations,
      proxy,
      noProxy,
    }),
    now: options.now ?? Date.now,
  });
}
