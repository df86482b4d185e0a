/**
 * `createRegistryCache()`: one cache instance owning its store, upstream client, events and
 * in-flight transfers. `handle()` names a request with the route grammar and hands it to the
 * one handler for its kind.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { DrpError } from './api/errors.js';
import { describeRawTarget, parseRequestTarget, type RequestTarget } from './api/request-target.js';
import { sendError } from './api/respond.js';
import { type Route, routeOf } from './api/route.js';
import { BlobEngine } from './blob-engine/index.js';
import type { OutcomeDraft, RequestContext } from './context.js';
import { CacheEvents, type RequestOutcome, type RequestType, type UpstreamEvent } from './events.js';
import { createBlobAccess } from './middleware/blob-access.js';
import { type BlobHandler, createBlobHandler } from './middleware/blobs.js';
import { createManifestServices, manifests } from './middleware/manifests.js';
import { passthrough } from './middleware/passthrough.js';
import { ping } from './middleware/ping.js';
import { push } from './middleware/push.js';
import { tokenRequest } from './middleware/token.js';
import { type RegistryCacheOptions, type ResolvedOptions, resolveOptions } from './options.js';
import { isPullOnlyTokenQuery, isReadRequest } from './policy/injection.js';
import type { Services } from './services.js';
import { AccessGrants } from './store/access-grants.js';
import { BlobStore } from './store/blob-store.js';
import type { ContentStore, ScrubResult } from './store/content-store.js';
import { TagIndex } from './store/tag-index.js';
import { UpstreamClient, type UpstreamObservation } from './upstream/client.js';
import { Credentials } from './upstream/credentials.js';
import { targetKey, type UpstreamTarget } from './upstream/target.js';

export type Handler = (ctx: RequestContext, services: Services) => Promise<void>;

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

/** Methods a push uses; anything else but GET and HEAD is refused (never sent upstream). */
const PUSH_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const READ_METHODS = new Set(['GET', 'HEAD']);

function requestTypeOf(route: Route, method: string): RequestType {
  switch (route.kind) {
    case 'blob':
      return PUSH_METHODS.has(method) ? 'upload' : 'blob-by-digest';
    case 'manifest':
      if (PUSH_METHODS.has(method)) return 'upload';
      return route.digest ? 'manifest-by-digest' : 'manifest-uncached';
    case 'upload-start':
    case 'upload':
      return 'upload';
    case 'ping':
    case 'tags':
    case 'referrers':
    case 'catalog':
      return route.kind;
    default:
      return 'other';
  }
}

/**
 * The method policy. With push off, only GET and HEAD ever reach upstream, on any path (as in
 * the original, which answers 405 to everything else); with push on, the push methods go
 * through, without the central credentials. Any other method (OPTIONS, TRACE...) is refused.
 */
function pickHandler(
  route: Route,
  method: string,
  services: Services,
  ctx: RequestContext,
  blobs: BlobHandler,
): Handler {
  if (PUSH_METHODS.has(method)) return services.options.allowPush ? push : refusePush;
  if (!READ_METHODS.has(method)) return refuseMethod;
  // A pushing client HEADs each blob to learn whether *this repository upstream* has it; a
  // cached copy (from any repository or registry) would make it skip the upload and the
  // manifest PUT fail with BLOB_UNKNOWN. With push allowed, blob HEADs ask upstream.
  if (route.kind === 'blob' && method === 'HEAD' && services.options.allowPush) return passthrough;
  if (route.kind === 'blob') return blobs;
  if (route.kind === 'manifest') return manifests;
  if (route.kind === 'ping') return ping;
  if (route.kind === 'other' && method === 'GET' && isTokenRequest(services, ctx)) return tokenRequest;
  return passthrough;
}

function isTokenRequest(services: Services, ctx: RequestContext): boolean {
  return services.manifests.auth.isTokenRequest(ctx.target, ctx.pathname);
}

/** Whether the central credentials may be added: reads only (policy/injection.ts). */
function mayInject(route: Route, method: string, services: Services, ctx: RequestContext): boolean {
  if (isReadRequest(route, method)) return true;
  return (
    route.kind === 'other' &&
    method === 'GET' &&
    isTokenRequest(services, ctx) &&
    isPullOnlyTokenQuery(ctx.query)
  );
}

async function refuseMethod(ctx: RequestContext): Promise<void> {
  ctx.outcome.cacheStatus = 'BYPASS';
  sendError(ctx, new DrpError('DRP_METHOD_NOT_ALLOWED', `${ctx.method} is not allowed through this proxy`));
}

async function refusePush(ctx: RequestContext): Promise<void> {
  ctx.outcome.cacheStatus = 'BYPASS';
  sendError(
    ctx,
    new DrpError('DRP_PUSH_DISABLED', 'push is disabled on this proxy (set ALLOW_PUSH=true to allow it)'),
  );
}

/** Parts of a cache a library user may supply instead of the defaults. */
export interface RegistryCacheParts {
  /**
   * Where content lives (default: the cacache-layout BlobStore in `cacheDir`). It must pass
   * `contentStoreConformance` (`@drp/core/testing`); the cache closes it on `close()`.
   */
  readonly store?: ContentStore;
}

export async function createRegistryCache(
  options: RegistryCacheOptions & RegistryCacheParts,
): Promise<RegistryCache> {
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
  const counters = { hits: 0, misses: 0 };
  events.on('hit', () => {
    counters.hits += 1;
  });
  events.on('miss', () => {
    counters.misses += 1;
  });
  const services: Services = {
    options: resolved,
    upstream,
    credentials,
    events,
    blobs: blobStore,
    engine,
    blobAccess: new AccessGrants(60_000, resolved.now),
    manifests: createManifestServices(resolved, blobStore, tags),
  };
  // Until the pipeline's handler factories land: the blob handler built once, from what it uses.
  const blobs = createBlobHandler({
    engine,
    upstream,
    credentials,
    auth: services.manifests.auth,
    access: createBlobAccess({ mode: resolved.verifyBlobAccess, grants: services.blobAccess, upstream }),
    events,
    passthrough: (ctx) => passthrough(ctx, services),
  });

  async function handle(
    req: IncomingMessage,
    res: ServerResponse,
    target: UpstreamTarget,
  ): Promise<RequestOutcome> {
    const startedAt = performance.now();
    const method = (req.method ?? 'GET').toUpperCase();
    const rawUrl = req.url ?? '/';
    const outcome: OutcomeDraft = {
      requestType: 'other',
      cacheStatus: 'BYPASS',
      upstreamMs: undefined,
      error: undefined,
    };
    const gone = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) gone.abort();
    };
    res.once('close', onClose);
    const bytes = countBodyBytes(res);
    const registry = targetKey(target);

    // The one parse of the request target: routing, method policy, injection, the upstream
    // URL and the log all use it. Until it succeeds, only a printable raw path is known.
    let requestTarget: RequestTarget | undefined;
    let route: Route = { kind: 'other' };
    let inject = false;
    const ctx: RequestContext = {
      req,
      res,
      target,
      registry,
      method,
      get pathname() {
        return requestTarget?.pathname ?? describeRawTarget(rawUrl);
      },
      get query() {
        return requestTarget?.query;
      },
      get pathAndQuery() {
        return requestTarget?.pathAndQuery ?? '/';
      },
      get route() {
        return route;
      },
      get inject() {
        return inject;
      },
      startedAt,
      clientGone: gone.signal,
      outcome,
    };

    try {
      requestTarget = parseRequestTarget(rawUrl);
      route = routeOf(requestTarget.pathname);
      outcome.requestType = requestTypeOf(route, method);
      inject = mayInject(route, method, services, ctx);
      await pickHandler(route, method, services, ctx, blobs)(ctx, services);
    } catch (error) {
      sendError(ctx, error);
    }
    if (!res.writableFinished && !res.destroyed) {
      await new Promise<void>((resolve) => res.once('close', resolve));
    }
    res.off('close', onClose);

    const result: RequestOutcome = {
      method,
      registry,
      path: ctx.pathname,
      requestType: outcome.requestType,
      cacheStatus: outcome.cacheStatus,
      status: res.statusCode,
      bytes: bytes(),
      upstreamMs: outcome.upstreamMs === undefined ? undefined : Math.round(outcome.upstreamMs),
      totalMs: Math.round(performance.now() - startedAt),
      error: outcome.error,
      aborted: !res.writableFinished,
    };
    events.publish('request', result);
    return result;
  }

  return {
    options: resolved,
    events,
    handle,
    middleware(resolve) {
      return (req, res, next) => {
        const target = resolve(req);
        if (!target) {
          if (next) next();
          else {
            res.statusCode = 404;
            res.end();
          }
          return;
        }
        void handle(req, res, target);
      };
    },
    stats() {
      const store = blobStore.stats();
      const fills = engine.stats();
      return {
        entries: store.entries,
        bytes: store.bytes,
        maxBytes: store.maxBytes,
        hits: counters.hits,
        misses: counters.misses,
        stored: store.stored,
        evicted: store.evicted,
        fills: fills.fills,
        activeFills: fills.active,
      };
    },
    scrub() {
      return blobStore.scrub?.() ?? Promise.resolve({ checked: 0, corrupt: [], missing: [] });
    },
    async close() {
      engine.close();
      upstream.close();
      await blobStore.close();
    },
  };
}

/** Counts body bytes written to the client, for the access log. */
function countBodyBytes(res: ServerResponse): () => number {
  let total = 0;
  const write = res.write.bind(res) as (chunk: unknown, ...rest: unknown[]) => boolean;
  const end = res.end.bind(res) as (chunk?: unknown, ...rest: unknown[]) => ServerResponse;
  const size = (chunk: unknown) =>
    typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk instanceof Uint8Array ? chunk.byteLength : 0;
  res.write = ((chunk: unknown, ...rest: unknown[]) => {
    total += size(chunk);
    return write(chunk, ...rest);
  }) as typeof res.write;
  res.end = ((chunk?: unknown, ...rest: unknown[]) => {
    if (typeof chunk !== 'function') total += size(chunk);
    return end(chunk, ...rest);
  }) as typeof res.end;
  return () => total;
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
