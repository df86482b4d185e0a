/**
 * `createRegistryCache()`: one cache instance owning its store, upstream client, events and
 * in-flight transfers. Requests go through the lifecycle in pipeline/lifecycle.ts: one parse of
 * the request target, the route table, the method policy, the user's steps, then the handler.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BlobEngine } from './blob-engine/index.js';
import { CacheEvents, type RequestOutcome, type UpstreamEvent } from './events.js';
import { type RegistryCacheOptions, type ResolvedOptions, resolveOptions } from './options.js';
import { buildHandlers, type HandlerOverrides } from './pipeline/handlers.js';
import { createLifecycle } from './pipeline/lifecycle.js';
import type { Step } from './pipeline/step.js';
import { AuthClassifier } from './policy/auth-class.js';
import { BlobStore } from './store/blob-store.js';
import type { ContentStore, ScrubResult } from './store/content-store.js';
import { TagIndex } from './store/tag-index.js';
import { UpstreamClient, type UpstreamObservation } from './upstream/client.js';
import { Credentials } from './upstream/credentials.js';
import { targetKey, type UpstreamTarget } from './upstream/target.js';

/**
 * Where content lives: any `ContentStore` (store/content-store.ts) that passes
 * `contentStoreConformance` (`@drp/core/testing`).
 */
export type CacheStore = ContentStore;

export interface CreateRegistryCacheOptions extends RegistryCacheOptions {
  /** Steps run, in order, between routing and the handler (pipeline/step.ts). */
  readonly use?: readonly Step[];
  /** Replacements for the blob or manifest handler. */
  readonly handlers?: HandlerOverrides;
  /**
   * A store opened by the caller (then not closed by `close()`); by default the cache opens one
   * in `cacheDir` with `maxSize` and `inactive`.
   */
  readonly store?: CacheStore;
}

/** Resolves which registry a request is for; `undefined` lets a middleware call `next()`. */
export type TargetResolver = (req: IncomingMessage) => UpstreamTarget | undefined;

export interface RegistryCache {
  /** The validated, frozen options this cache runs with. */
  readonly options: ResolvedOptions;
  /** Hit, miss, store, evict, stale and per-request events (also on diagnostics_channel). */
  readonly events: CacheEvents;
  /**
   * Serves one registry API request for `target`. Resolves when the response has finished or
   * the client has gone; never rejects (failures become OCI error responses).
   */
  handle(req: IncomingMessage, res: ServerResponse, target: UpstreamTarget): Promise<RequestOutcome>;
  /** A connect/express-style middleware: requests the resolver names are served, others `next()`. */
  middleware(
    resolve: TargetResolver,
  ): (req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void) => void;
  /** Counters and store occupancy, for metrics. Cheap: no I/O. */
  stats(): CacheStats;
  /** Re-hashes every stored entry, removing corrupt ones (see BlobStore.scrub). */
  scrub(): Promise<ScrubResult>;
  /** Stops background work and frees upstream connections. In-flight fills are abandoned. */
  close(): Promise<void>;
}

export interface CacheStats {
  /** Blobs (and manifests by digest) in the store. */
  readonly entries: number;
  readonly bytes: number;
  readonly maxBytes: number;
  /** Requests served from the store / that needed upstream, since start. */
  readonly hits: number;
  readonly misses: number;
  /** Blobs committed / removed since start. */
  readonly stored: number;
  readonly evicted: number;
  /** Upstream blob fetches since start, and running now (several clients share one). */
  readonly fills: number;
  readonly activeFills: number;
}

export async function createRegistryCache(options: CreateRegistryCacheOptions): Promise<RegistryCache> {
  const resolved = resolveOptions(options);
  const events = new CacheEvents(randomUUID());
  const credentials = new Credentials(resolved.credentials);
  const upstream = new UpstreamClient(resolved.upstream, {
    credentials,
    observe: (o) => events.publish('upstream', upstreamEvent(o)),
  });
  // A hundredth of the cache (1-64 MiB) for the tag index; its bytes count in the cap too.
  const tags = new TagIndex(resolved.cacheDir, {
    maxEntries: 100_000,
    maxBytes: Math.min(64 * 2 ** 20, Math.max(2 ** 20, Math.floor(resolved.maxSizeBytes / 100))),
  });
  const blobStore: ContentStore =
    options.store ??
    (await BlobStore.open({
      dir: resolved.cacheDir,
      maxSizeBytes: resolved.maxSizeBytes,
      inactiveMs: resolved.inactiveMs,
      now: resolved.now,
      events,
      otherBytes: () => tags.bytes,
    }));
  await tags.load();
  const engine = new BlobEngine({ store: blobStore, events });
  const counters = countHits(events);
  const auth = new AuthClassifier(`${resolved.cacheDir}/drp-auth.key`, resolved.now);
  const parts = { options: resolved, upstream, credentials, events, auth, blobStore, engine, tags };
  const handle = createLifecycle({
    events,
    allowPush: resolved.allowPush,
    handlers: buildHandlers(parts, options.handlers),
    steps: options.use ?? [],
    isTokenRequest: (ctx) => auth.isTokenRequest(ctx.target, ctx.pathname),
  });

  return {
    options: resolved,
    events,
    handle,
    middleware: (resolve) => middlewareOf(handle, resolve),
    stats: () => statsOf(blobStore, engine, counters),
    scrub() {
      return blobStore.scrub?.() ?? Promise.resolve({ checked: 0, corrupt: [], missing: [] });
    },
    async close() {
      engine.close();
      upstream.close();
      if (!options.store) await blobStore.close();
    },
  };
}

type Handle = RegistryCache['handle'];

function middlewareOf(handle: Handle, resolve: TargetResolver): ReturnType<RegistryCache['middleware']> {
  return (req, res, next) => {
    const target = resolve(req);
    if (target) {
      void handle(req, res, target);
      return;
    }
    if (next) next();
    else {
      res.statusCode = 404;
      res.end();
    }
  };
}

function countHits(events: CacheEvents): { hits: number; misses: number } {
  const counters = { hits: 0, misses: 0 };
  events.on('hit', () => {
    counters.hits += 1;
  });
  events.on('miss', () => {
    counters.misses += 1;
  });
  return counters;
}

function statsOf(
  store: ContentStore,
  engine: BlobEngine,
  counters: { hits: number; misses: number },
): CacheStats {
  const { entries, bytes, maxBytes, stored, evicted } = store.stats();
  const fills = engine.stats();
  const { hits, misses } = counters;
  return {
    entries,
    bytes,
    maxBytes,
    hits,
    misses,
    stored,
    evicted,
    fills: fills.fills,
    activeFills: fills.active,
  };
}

/** Docker Hub's `ratelimit-remaining: 76;w=21600` -> 76. */
function rateLimitFigure(value: string | string[] | undefined): number | undefined {
  const text = [value ?? []].flat()[0];
  if (text === undefined) return undefined;
  const n = Number.parseInt(text.split(';')[0] ?? '', 10);
  return Number.isFinite(n) ? n : undefined;
}

function upstreamEvent(o: UpstreamObservation): UpstreamEvent {
  return {
    registry: targetKey(o.target),
    method: o.method,
    status: o.status,
    ms: Math.round(o.ms),
    error: o.error?.code,
    rateLimitLimit: rateLimitFigure(o.headers?.['ratelimit-limit']),
    rateLimitRemaining: rateLimitFigure(o.headers?.['ratelimit-remaining']),
  };
}
