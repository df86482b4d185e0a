/**
 * Manifests: `GET|HEAD /v2/<name>/manifests/<reference>`.
 *
 * By digest: immutable, served from the content store; a miss is fetched with GET, verified
 * against the digest and stored. A client's HEAD on a miss stays a HEAD upstream.
 *
 * By tag: the tag index maps (registry, repository, tag, Accept, auth class) to a digest.
 *  - Manifest cache on (`ENABLE_MANIFEST_CACHE`) and the entry younger than its tier's TTL:
 *    served from the cache, no upstream request (HIT).
 *  - Older: revalidated with an upstream HEAD (free on Docker Hub); same digest -> served from
 *    the cache (REVALIDATED); another digest -> GET (MISS), or for a client's HEAD the
 *    upstream's HEAD answer.
 *  - Cache off: always asked upstream (BYPASS), but the answer is remembered.
 *  - Upstream answering 429 or 5xx, timing out or unreachable: the last known manifest for
 *    that key is served with `X-Drp-Stale: 1` and a `Warning: 110` (STALE), whatever the
 *    cache setting. With nothing known, the upstream's answer goes through unchanged.
 *
 * Every upstream request carries the client's Authorization, or the configured credentials
 * for the host when the client sent none.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { pipeline } from 'node:stream/promises';
import createDebug from 'debug';
import { DrpError, isDrpError } from '../api/errors.js';
import { sendError, writeHead } from '../api/respond.js';
import { parseDigest } from '../api/route.js';
import type { RequestContext } from '../context.js';
import type { ResolvedOptions } from '../options.js';
import { type AuthClass, AuthClassifier } from '../policy/auth-class.js';
import { TagTiers } from '../policy/tiers.js';
import type { Services } from '../services.js';
import { fetchedByOf, isSharedClass, kindOf, manifestMeta, needsAccessCheck } from '../store/content-kind.js';
import {
  type ContentBackend,
  declaredMediaType,
  digestOf,
  MAX_MANIFEST_BYTES,
  ManifestStore,
  type StoredManifest,
} from '../store/manifest-store.js';
import { normaliseAccept, type TagEntry, type TagIndex, type TagKey } from '../store/tag-index.js';
import type { HeaderMap, UpstreamResponse } from '../upstream/client.js';
import { endToEndHeaders, headerValue } from '../upstream/headers.js';
import { PingMemory } from './ping.js';

const debug = createDebug('drp:manifests');

/** Header drp adds to every answer served stale. */
export const STALE_HEADER = 'x-drp-stale';
const STALE_HEADERS = { [STALE_HEADER]: '1', warning: '110 - "Response is Stale"' } as const;

/** Request headers never forwarded for a manifest: drp wants a whole body it can verify and keep. */
const DROPPED_REQUEST_HEADERS = ['if-none-match', 'if-modified-since', 'if-match', 'range', 'if-range'];

/** Transport errors after which a stale answer is better than none. */
const STALE_ERRORS = new Set([
  'DRP_UPSTREAM_UNREACHABLE',
  'DRP_UPSTREAM_TIMEOUT',
  'DRP_UPSTREAM_TLS',
  'DRP_UPSTREAM_PROTOCOL',
  'DRP_UPSTREAM_TRUNCATED',
  'DRP_TOO_MANY_REDIRECTS',
  'DRP_UPSTREAM_PROXY',
]);

/** The manifest side of a cache instance: created once, owned by Services. */
export interface ManifestServices {
  readonly tiers: TagTiers;
  readonly tags: TagIndex;
  readonly store: ManifestStore;
  readonly auth: AuthClassifier;
  readonly pings: PingMemory;
  readonly backend: ContentBackend;
  /** Upstream GETs in flight, so identical concurrent requests share one. */
  readonly flights: Map<string, Promise<Fetched>>;
}

export function createManifestServices(
  options: ResolvedOptions,
  backend: ContentBackend,
  tags: TagIndex,
): ManifestServices {
  return {
    tiers: new TagTiers(options.manifestCache),
    tags,
    store: new ManifestStore(backend),
    auth: new AuthClassifier(`${options.cacheDir}/drp-auth.key`, options.now),
    pings: new PingMemory(options.cacheDir),
    backend,
    flights: new Map(),
  };
}

/** An upstream status after which a stale answer is served when there is one. */
export function isUpstreamFailure(status: number): boolean {
  return status === 429 || status >= 500;
}

/** A whole upstream answer (bodies of manifests and errors are small), or a transport error. */
export type Fetched =
  | {
      readonly kind: 'buffered';
      readonly status: number;
      readonly headers: IncomingHttpHeaders;
      readonly data: Buffer;
      readonly upstreamMs: number;
    }
  | { readonly kind: 'error'; readonly error: DrpError }
  /** Too big to buffer: only the request that started it can stream it. */
  | { readonly kind: 'stream'; readonly response: UpstreamResponse; readonly head: Buffer };

/** Reads a response body up to `limit` bytes; beyond that, hands back what it read, paused. */
export function readSmall(response: UpstreamResponse, limit: number, isHead = false): Promise<Fetched> {
  // A HEAD answer announces the size of a body it does not send.
  const declared = isHead
    ? Number.NaN
    : Number(headerValue(response.headers, 'content-length') ?? Number.NaN);
  const body = response.body;
  // Errors after this point are the eventual reader's (pipeline) to handle, never a crash.
  body.on('error', () => undefined);
  if (Number.isFinite(declared) && declared > limit) {
    body.pause();
    return Promise.resolve({ kind: 'stream', response, head: Buffer.alloc(0) });
  }
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', onError);
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size > limit) {
        body.pause();
        cleanup();
        resolve({ kind: 'stream', response, head: Buffer.concat(chunks) });
      }
    };
    const onEnd = () => {
      cleanup();
      resolve({
        kind: 'buffered',
        status: response.status,
        headers: response.headers,
        data: Buffer.concat(chunks),
        upstreamMs: response.headersMs,
      });
    };
    const onError = (error: unknown) => {
      cleanup();
      resolve({ kind: 'error', error: toDrp(error) });
    };
    body.on('data', onData);
    body.once('end', onEnd);
    body.once('error', onError);
  });
}

export function toDrp(error: unknown): DrpError {
  return isDrpError(error) ? error : new DrpError('DRP_INTERNAL', 'internal error', { cause: error });
}

/** Headers for an upstream manifest request, and the auth class they put it in. */
export function manifestRequestHeaders(
  ctx: RequestContext,
  services: Services,
): { headers: HeaderMap; authClass: AuthClass } {
  const own = endToEndHeaders(ctx.req.headers);
  for (const name of DROPPED_REQUEST_HEADERS) delete own[name];
  delete own['content-length'];
  const clientAuth = headerValue(ctx.req.headers, 'authorization');
  const injected = clientAuth === undefined && services.credentials.has(ctx);
  return {
    headers: services.credentials.apply(ctx, own),
    authClass: services.manifests.auth.classify(clientAuth, injected),
  };
}

/**
 * Asks upstream for a manifest. With `staleAtHand`, a stale answer is ready to be served, so
 * upstream gets only `staleTimeout` (not the full response timeout) to answer completely: an
 * upstream that accepts connections but never answers must not hold a fully cached pull.
 */
async function fetchManifest(
  ctx: RequestContext,
  services: Services,
  method: 'GET' | 'HEAD',
  headers: HeaderMap,
  staleAtHand = false,
): Promise<Fetched> {
  const limit = staleAtHand ? services.options.upstream.staleTimeoutMs : 0;
  if (limit <= 0) return fetchManifestNow(ctx, services, method, headers, undefined);
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), limit);
  try {
    const fetched = await fetchManifestNow(ctx, services, method, headers, deadline.signal);
    if (!deadline.signal.aborted) return fetched;
    return {
      kind: 'error',
      error: new DrpError(
        'DRP_UPSTREAM_TIMEOUT',
        `upstream ${ctx.registry} did not answer within ${limit}ms`,
      ),
    };
  } finally {
    clearTimeout(timer);
  }
}

async function fetchManifestNow(
  ctx: RequestContext,
  services: Services,
  method: 'GET' | 'HEAD',
  headers: HeaderMap,
  signal: AbortSignal | undefined,
): Promise<Fetched> {
  let response: UpstreamResponse;
  try {
    response = await services.upstream.request(ctx.target, {
      method,
      path: ctx.pathAndQuery,
      headers,
      ...(signal ? { signal } : {}),
    });
  } catch (error) {
    return { kind: 'error', error: toDrp(error) };
  }
  services.manifests.auth.noteChallenge(response.headers['www-authenticate']);
  const fetched = await readSmall(response, MAX_MANIFEST_BYTES, method === 'HEAD');
  if (fetched.kind !== 'stream') return fetched;
  // Bigger than any registry allows a manifest to be (distribution's 4 MiB): never relayed
  // unverified, never buffered without bound.
  fetched.response.abort();
  return {
    kind: 'error',
    error: new DrpError(
      'DRP_MANIFEST_TOO_LARGE',
      `upstream manifest is larger than ${MAX_MANIFEST_BYTES} bytes (answer ${fetched.response.status})`,
    ),
  };
}

/** One upstream GET per key at a time; followers share a buffered answer. */
async function sharedGet(
  ctx: RequestContext,
  services: Services,
  flightKey: string,
  headers: HeaderMap,
  staleAtHand = false,
): Promise<Fetched> {
  const flights = services.manifests.flights;
  const running = flights.get(flightKey);
  if (running) {
    const result = await running;
    // A streamed answer belongs to the request that started it.
    if (result.kind !== 'stream') return result;
  }
  const flight = fetchManifest(ctx, services, 'GET', headers, staleAtHand);
  flights.set(flightKey, flight);
  try {
    return await flight;
  } finally {
    if (flights.get(flightKey) === flight) flights.delete(flightKey);
  }
}

/** Writes a buffered upstream answer (error or not) to the client unchanged. */
function relayBuffered(ctx: RequestContext, fetched: Extract<Fetched, { kind: 'buffered' }>): void {
  ctx.outcome.upstreamMs = fetched.upstreamMs;
  const headers: OutgoingHttpHeaders = endToEndHeaders(fetched.headers);
  if (ctx.method !== 'HEAD') headers['content-length'] = fetched.data.length;
  writeHead(ctx, fetched.status, headers);
  ctx.res.end(ctx.method === 'HEAD' ? undefined : fetched.data);
}

async function relayStream(
  ctx: RequestContext,
  fetched: Extract<Fetched, { kind: 'stream' }>,
): Promise<void> {
  const { response, head } = fetched;
  ctx.outcome.upstreamMs = response.headersMs;
  writeHead(ctx, response.status, endToEndHeaders(response.headers));
  try {
    if (head.length > 0) ctx.res.write(head);
    response.body.resume();
    await pipeline(response.body, ctx.res);
  } catch (error) {
    response.abort();
    sendError(ctx, error);
  }
}

async function relay(ctx: RequestContext, fetched: Fetched): Promise<void> {
  if (fetched.kind === 'buffered') relayBuffered(ctx, fetched);
  else if (fetched.kind === 'stream') await relayStream(ctx, fetched);
  else sendError(ctx, fetched.error);
}

/** True when this answer means "upstream is failing" rather than "upstream said no". */
function failed(fetched: Fetched): boolean {
  if (fetched.kind === 'error') return STALE_ERRORS.has(fetched.error.code);
  if (fetched.kind === 'buffered') return isUpstreamFailure(fetched.status);
  return isUpstreamFailure(fetched.response.status);
}

function failureReason(fetched: Fetched): string {
  if (fetched.kind === 'error') return fetched.error.code;
  const status = fetched.kind === 'buffered' ? fetched.status : fetched.response.status;
  return `upstream ${status}`;
}

function manifestHeaders(manifest: StoredManifest): OutgoingHttpHeaders {
  return {
    'content-type': manifest.mediaType || 'application/octet-stream',
    'content-length': manifest.data.length,
    'docker-content-digest': manifest.digest,
    etag: `"${manifest.digest}"`,
    'docker-distribution-api-version': 'registry/2.0',
  };
}

function serveStored(ctx: RequestContext, manifest: StoredManifest, extra: OutgoingHttpHeaders = {}): void {
  writeHead(ctx, 200, { ...manifestHeaders(manifest), ...extra });
  ctx.res.end(ctx.method === 'HEAD' ? undefined : manifest.data);
}

function serveStale(
  ctx: RequestContext,
  services: Services,
  manifest: StoredManifest,
  fetched: Fetched,
): void {
  if (fetched.kind === 'stream') fetched.response.abort();
  const reason = failureReason(fetched);
  ctx.outcome.cacheStatus = 'STALE';
  const route = ctx.route;
  services.events.publish('stale', {
    registry: ctx.registry,
    ...(route.name ? { name: route.name } : {}),
    ...(route.reference ? { reference: route.reference } : {}),
    reason,
  });
  debug('stale %s %s (%s)', ctx.registry, ctx.pathname, reason);
  serveStored(ctx, manifest, STALE_HEADERS);
}

/**
 * Docker schema 1 (deprecated; registries still convert to it for old Accept headers): its
 * digest is not the digest of its bytes, so it can be neither verified nor cached.
 */
function isSchema1(fetched: Extract<Fetched, { kind: 'buffered' }>): boolean {
  const type = headerValue(fetched.headers, 'content-type') ?? '';
  return type.startsWith('application/vnd.docker.distribution.manifest.v1+');
}

/**
 * Checks an upstream 200 manifest: the digest it claims must be the digest of its bytes.
 * Returns the digest and media type, or a DrpError.
 */
function checkManifest(
  fetched: Extract<Fetched, { kind: 'buffered' }>,
  expected?: string,
): { digest: string; mediaType: string } | DrpError {
  const claimed = headerValue(fetched.headers, 'docker-content-digest') ?? expected;
  let digest: string;
  try {
    digest = digestOf(fetched.data, claimed);
  } catch {
    return new DrpError('DRP_UPSTREAM_PROTOCOL', 'upstream sent an unusable Docker-Content-Digest');
  }
  if ((claimed && claimed !== digest) || (expected && expected !== digest)) {
    return new DrpError('DRP_DIGEST_MISMATCH', `upstream manifest does not match ${expected ?? claimed}`);
  }
  const contentType = headerValue(fetched.headers, 'content-type');
  const mediaType = contentType?.split(';')[0]?.trim() || declaredMediaType(fetched.data) || '';
  return { digest, mediaType };
}

/** Stores a verified manifest, recording its kind and the auth class that fetched it. */
async function storeManifest(
  services: Services,
  digest: string,
  data: Buffer,
  mediaType: string,
  authClass: AuthClass,
): Promise<void> {
  const existing = services.blobs.peek(digest);
  // Stored as a blob: it stays one (a registry serving a layer's bytes as a manifest must not
  // turn the cached layer into something the blob route refuses).
  if (existing && kindOf(existing.meta) !== 'manifest') return;
  const previous = fetchedByOf(existing?.meta);
  // Keep the first class, except that a shared fetch proves the manifest is public.
  if (existing && (previous === authClass || isSharedClass(previous))) return;
  if (existing && !isSharedClass(authClass)) return;
  if (data.length > MAX_MANIFEST_BYTES || digestOf(data, digest) !== digest) return;
  try {
    await services.manifests.backend.putBuffer(digest, data, manifestMeta(mediaType, authClass));
    services.events.publish('store', {
      kind: 'manifest',
      digest,
      size: data.length,
      ms: 0,
    });
  } catch (error) {
    debug('cannot store manifest %s: %O', digest, error);
  }
}

export async function manifests(ctx: RequestContext, services: Services): Promise<void> {
  const { route } = ctx;
  if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
    throw new DrpError('DRP_METHOD_NOT_ALLOWED', `${ctx.method} is not a manifest read`);
  }
  if (route.digest) return serveByDigest(ctx, services, route.digest);
  if (route.tag) return serveByTag(ctx, services, route.tag);
  throw new DrpError('DRP_REFERENCE_INVALID', 'manifest reference missing');
}

/**
 * Manifests by digest. A stored manifest is served without asking upstream when it was fetched
 * anonymously (public) or by the same auth class as this request; any other client first
 * proves its right with an upstream HEAD (free on Docker Hub), so a manifest fetched with one
 * client's credentials never reaches another client that upstream would refuse.
 */
async function serveByDigest(ctx: RequestContext, services: Services, digest: string): Promise<void> {
  const m = services.manifests;
  ctx.outcome.requestType = 'manifest-by-digest';
  const { headers, authClass } = manifestRequestHeaders(ctx, services);
  const entry = services.blobs.peek(digest);
  // Only what was stored as a manifest, and never more than a manifest can be: a layer's digest
  // asked for here is fetched from upstream like any miss (and not stored over the blob).
  const isManifest =
    entry !== undefined && kindOf(entry.meta) === 'manifest' && entry.size <= MAX_MANIFEST_BYTES;
  const stored = isManifest ? await m.store.get(digest) : undefined;
  if (stored) {
    const fetchedBy = fetchedByOf(entry?.meta);
    if (!needsAccessCheck(services.options.verifyBlobAccess, fetchedBy, authClass)) {
      ctx.outcome.cacheStatus = 'HIT';
      services.events.publish('hit', {
        kind: 'manifest',
        digest,
        size: stored.data.length,
        registry: ctx.registry,
      });
      serveStored(ctx, stored);
      return;
    }
    const check = await fetchManifest(ctx, services, 'HEAD', headers);
    if (check.kind === 'buffered' && check.status === 200) {
      ctx.outcome.cacheStatus = 'REVALIDATED';
      ctx.outcome.upstreamMs = check.upstreamMs;
      serveStored(ctx, stored);
      return;
    }
    // Upstream refused this client (or is failing: without its word, nothing private is served).
    ctx.outcome.cacheStatus = 'BYPASS';
    await relay(ctx, check);
    return;
  }

  ctx.outcome.cacheStatus = 'MISS';
  if (ctx.method === 'HEAD') {
    await relay(ctx, await fetchManifest(ctx, services, 'HEAD', headers));
    return;
  }
  services.events.publish('miss', { kind: 'manifest', digest, size: 0, registry: ctx.registry });
  const fetched = await sharedGet(ctx, services, `${ctx.registry}\0${route(ctx)}\0${authClass}`, headers);
  if (fetched.kind !== 'buffered' || fetched.status !== 200) {
    await relay(ctx, fetched);
    return;
  }
  if (isSchema1(fetched)) {
    relayBuffered(ctx, fetched);
    return;
  }
  const checked = checkManifest(fetched, digest);
  if (checked instanceof DrpError) {
    services.events.publish('verify-failed', {
      digest,
      size: fetched.data.length,
      registry: ctx.registry,
      reason: 'mismatch',
      received: fetched.data.length,
    });
    sendError(ctx, checked);
    return;
  }
  await storeManifest(services, digest, fetched.data, checked.mediaType, authClass);
  relayBuffered(ctx, fetched);
}

function route(ctx: RequestContext): string {
  return `${ctx.route.name ?? ''}@${ctx.route.reference ?? ''}`;
}

/**
 * Records what an upstream HEAD said a tag points to. containerd resolves a tag with HEAD and
 * then GETs the manifest by digest, which stores it; with this entry the next client asking for
 * the tag (same class) is served from the cache too.
 */
async function rememberHead(
  services: Services,
  key: TagKey,
  head: Fetched,
  tier: TagEntry['tier'],
  now: number,
): Promise<void> {
  if (head.kind !== 'buffered' || head.status !== 200) return;
  const digest = headerValue(head.headers, 'docker-content-digest');
  const contentType = headerValue(head.headers, 'content-type') ?? '';
  if (!digest || contentType.startsWith('application/vnd.docker.distribution.manifest.v1+')) return;
  try {
    parseDigest(digest);
  } catch {
    return;
  }
  const size = Number(headerValue(head.headers, 'content-length') ?? 0);
  await services.manifests.tags.put({
    ...key,
    digest,
    mediaType: contentType.split(';')[0]?.trim() ?? '',
    size: Number.isFinite(size) ? size : 0,
    fetchedAt: now,
    tier,
  });
}

async function serveByTag(ctx: RequestContext, services: Services, tag: string): Promise<void> {
  const m = services.manifests;
  const name = ctx.route.name ?? '';
  const tier = m.tiers.classify(tag);
  const enabled = m.tiers.enabled;
  ctx.outcome.requestType = enabled ? tier.requestType : 'manifest-uncached';
  const { headers, authClass } = manifestRequestHeaders(ctx, services);
  const key: TagKey = {
    registry: ctx.registry,
    name,
    tag,
    accept: normaliseAccept(ctx.req.headers.accept),
    authClass,
  };
  const entry = await m.tags.get(key);
  const cached = entry ? await m.store.get(entry.digest) : undefined;
  const now = services.options.now();

  if (enabled && entry && cached) {
    const age = now - entry.fetchedAt;
    if (age >= 0 && age < tier.ttlMs) {
      debug('hit %s/%s:%s (%s)', ctx.registry, name, tag, tier.explain());
      ctx.outcome.cacheStatus = 'HIT';
      services.events.publish('hit', {
        kind: 'manifest',
        digest: cached.digest,
        size: cached.data.length,
        registry: ctx.registry,
        name,
      });
      serveStored(ctx, cached);
      return;
    }
    // Expired: ask upstream with a HEAD, which Docker Hub does not count as a pull.
    const head = await fetchManifest(ctx, services, 'HEAD', headers, true);
    if (failed(head)) return serveStale(ctx, services, cached, head);
    if (head.kind === 'buffered' && head.status === 200) {
      const digest = headerValue(head.headers, 'docker-content-digest');
      ctx.outcome.upstreamMs = head.upstreamMs;
      if (digest === entry.digest) {
        await m.tags.put({ ...entry, fetchedAt: now, tier: tier.tier });
        ctx.outcome.cacheStatus = 'REVALIDATED';
        serveStored(ctx, cached);
        return;
      }
      if (ctx.method === 'HEAD') {
        // Changed, and the client only asked for headers: the upstream's HEAD answer is it.
        ctx.outcome.cacheStatus = 'EXPIRED';
        await rememberHead(services, key, head, tier.tier, now);
        relayBuffered(ctx, head);
        return;
      }
      // Changed (or no digest header): fetch the new manifest below.
    } else {
      // 401, 403, 404...: upstream's word on this client and tag goes through unchanged.
      ctx.outcome.cacheStatus = 'EXPIRED';
      await relay(ctx, head);
      return;
    }
  }

  ctx.outcome.cacheStatus = enabled ? 'MISS' : 'BYPASS';
  if (ctx.method === 'HEAD') {
    const head = await fetchManifest(ctx, services, 'HEAD', headers, cached !== undefined);
    if (cached && failed(head)) return serveStale(ctx, services, cached, head);
    await rememberHead(services, key, head, enabled ? tier.tier : 'uncached', now);
    await relay(ctx, head);
    return;
  }

  const flightKey = `${key.registry}\0${key.name}\0${key.tag}\0${key.accept}\0${key.authClass}`;
  const fetched = await sharedGet(ctx, services, flightKey, headers, cached !== undefined);
  if (cached && failed(fetched)) return serveStale(ctx, services, cached, fetched);
  if (fetched.kind !== 'buffered' || fetched.status !== 200) {
    await relay(ctx, fetched);
    return;
  }
  if (isSchema1(fetched)) {
    // Signed schema 1: its digest covers the payload without signatures; never cached.
    ctx.outcome.cacheStatus = 'BYPASS';
    relayBuffered(ctx, fetched);
    return;
  }
  const checked = checkManifest(fetched);
  if (checked instanceof DrpError) {
    if (cached) return serveStale(ctx, services, cached, { kind: 'error', error: checked });
    sendError(ctx, checked);
    return;
  }
  services.events.publish('miss', {
    kind: 'manifest',
    digest: checked.digest,
    size: fetched.data.length,
    registry: ctx.registry,
    name,
  });
  await storeManifest(services, checked.digest, fetched.data, checked.mediaType, authClass);
  const fresh: TagEntry = {
    ...key,
    digest: checked.digest,
    mediaType: checked.mediaType,
    size: fetched.data.length,
    fetchedAt: now,
    tier: enabled ? tier.tier : 'uncached',
  };
  await m.tags.put(fresh);
  const response = { ...fetched, headers: { ...fetched.headers, 'docker-content-digest': checked.digest } };
  relayBuffered(ctx, response);
}
