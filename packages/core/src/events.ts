/**
 * What a cache reports about itself, for logs and metrics. Each cache instance owns an emitter
 * (`cache.events`), and every event is also published on a `diagnostics_channel` named
 * `drp:core:<event>` with the instance's id, so tools can observe without a reference to it.
 * The library itself never logs.
 */
import diagnostics from 'node:diagnostics_channel';
import { EventEmitter } from 'node:events';
import type { DrpErrorCode } from './api/errors.js';

/** The original's `upstream_cache_status` values that drp produces. */
export type CacheStatus = 'HIT' | 'MISS' | 'STALE' | 'REVALIDATED' | 'EXPIRED' | 'BYPASS';

/** The original's `request_type` values, plus drp's own for routes it names. */
export type RequestType =
  | 'blob-by-digest'
  | 'manifest-by-digest'
  | 'manifest-primary'
  | 'manifest-secondary'
  | 'manifest-default'
  | 'manifest-uncached'
  | 'ping'
  | 'tags'
  | 'referrers'
  | 'catalog'
  | 'upload'
  | 'auth'
  | 'other';

/** One finished request, as the daemon's access log prints it. Contains no credentials. */
export interface RequestOutcome {
  readonly method: string;
  /** `host:port` of the registry the request was for. */
  readonly registry: string;
  /** Path without the query string (queries may carry signed tokens). */
  readonly path: string;
  readonly requestType: RequestType;
  readonly cacheStatus: CacheStatus;
  readonly status: number;
  /** Body bytes written to the client. */
  readonly bytes: number;
  /** Milliseconds waiting for upstream response headers, when upstream was asked. */
  readonly upstreamMs: number | undefined;
  readonly totalMs: number;
  /** Set when the request ended in an error. */
  readonly error: DrpErrorCode | undefined;
  /** True when the client went away before the response was complete. */
  readonly aborted: boolean;
}

export interface BlobEvent {
  readonly digest: string;
  readonly size: number;
  readonly registry?: string;
  readonly name?: string;
}

export interface UpstreamEvent {
  /** `host:port` of the registry asked (the target, not a redirect's CDN host). */
  readonly registry: string;
  readonly method: string;
  /** Undefined when no response arrived (connection, TLS or timeout error). */
  readonly status: number | undefined;
  readonly ms: number;
  /** Set when no response arrived. */
  readonly error: string | undefined;
  /** Docker Hub's `ratelimit-limit` / `ratelimit-remaining` (the count before `;w=`), when sent. */
  readonly rateLimitLimit: number | undefined;
  readonly rateLimitRemaining: number | undefined;
}

export interface CacheEventMap {
  /** A request finished (successfully or not). */
  request: [RequestOutcome];
  /** A blob or manifest was served from the store. */
  hit: [BlobEvent & { readonly kind: 'blob' | 'manifest' }];
  /** A blob or manifest had to be fetched from upstream. */
  miss: [BlobEvent & { readonly kind: 'blob' | 'manifest' }];
  /** Content was verified and committed to the store. */
  store: [BlobEvent & { readonly kind: 'blob' | 'manifest'; readonly ms: number }];
  /** Content was removed from the store. */
  evict: [BlobEvent & { readonly reason: 'size' | 'inactive' | 'manual' | 'corrupt' }];
  /** Upstream sent bytes that do not match their digest, or fewer than announced. */
  'verify-failed': [BlobEvent & { readonly reason: 'mismatch' | 'truncated'; readonly received: number }];
  /** A cached manifest (or ping answer) was served because upstream failed. */
  stale: [
    {
      readonly registry: string;
      readonly name?: string;
      readonly reference?: string;
      readonly reason: string;
    },
  ];
  /** Storing was skipped (e.g. the disk is full); the client was still served. */
  'store-skipped': [BlobEvent & { readonly reason: string }];
  /** drp asked a registry (or its CDN) something: its answer, or the error instead of one. */
  upstream: [UpstreamEvent];
}

export type CacheEventName = keyof CacheEventMap;

export const CHANNEL_PREFIX = 'drp:core:';

export class CacheEvents extends EventEmitter<CacheEventMap> {
  readonly #cacheId: string;
  readonly #channels = new Map<string, diagnostics.Channel>();

  constructor(cacheId: string) {
    super();
    this.#cacheId = cacheId;
  }

  /** Emits to listeners on this instance and publishes on the diagnostics channel. */
  publish<K extends CacheEventName>(event: K, ...args: CacheEventMap[K]): void {
    let channel = this.#channels.get(event);
    if (!channel) {
      channel = diagnostics.channel(`${CHANNEL_PREFIX}${event}`);
      this.#channels.set(event, channel);
    }
    if (channel.hasSubscribers) channel.publish({ cacheId: this.#cacheId, event, data: args[0] });
    // Unlike a plain EventEmitter, an 'error'-free bus: no listener means nothing happens.
    if (this.listenerCount(event) > 0)
      (this.emit as (e: K, ...a: CacheEventMap[K]) => boolean)(event, ...args);
  }
}
