/**
 * `GET|HEAD /v2/<name>/blobs/<digest>`: served from the store when present (no upstream request
 * at all, Range and If-Range honoured), otherwise fetched once through the blob engine and
 * streamed to every client that asked while it runs.
 *
 * A HEAD on a miss is forwarded as a HEAD (the blob is never downloaded for it). An upstream
 * answer that is not the blob (401 with its challenge, 404, 429...) is relayed untouched and
 * nothing is cached. Other methods on a blob path go through uncached.
 */
import type { OutgoingHttpHeaders } from 'node:http';
import { ociErrorBody } from '../api/errors.js';
import { relayResponse, sendError, writeHead } from '../api/respond.js';
import type { BlobEngine, BlobResult, FillResume } from '../blob-engine/index.js';
import type { RequestContext } from '../context.js';
import type { CacheEvents } from '../events.js';
import { blobEtag, notModified, type RangeResult, rangeFor } from '../http/range.js';
import { type ChunkSource, pump, readAtSource } from '../http/send.js';
import type { AuthClassifier } from '../policy/auth-class.js';
import { blobMeta, fetchedByOf, kindOf } from '../store/content-kind.js';
import type { ContentHandle } from '../store/content-store.js';
import type { HeaderMap, UpstreamClient, UpstreamResponse } from '../upstream/client.js';
import type { Credentials } from '../upstream/credentials.js';
import { endToEndHeaders } from '../upstream/headers.js';
import type { AccessRequest, BlobAccess } from './blob-access.js';

/** Request headers that must not reach upstream on a fill: it always fetches the whole blob. */
const NOT_FOR_FILL = [
  'range',
  'if-range',
  'if-none-match',
  'if-modified-since',
  'if-match',
  'if-unmodified-since',
  'accept-encoding',
];

/** What the blob handler uses, and nothing else. */
export interface BlobHandlerDeps {
  readonly engine: BlobEngine;
  readonly upstream: Pick<UpstreamClient, 'request'>;
  /** The central credentials, added on reads only (`ctx.inject`). */
  readonly credentials: Pick<Credentials, 'has' | 'apply'>;
  readonly auth: Pick<AuthClassifier, 'classifyRequest'>;
  readonly access: BlobAccess;
  readonly events: CacheEvents;
  /** Where requests the blob handler does not cache go (uncached, to upstream). */
  readonly passthrough: (ctx: RequestContext) => Promise<void>;
}

export type BlobHandler = (ctx: RequestContext) => Promise<void>;

export function createBlobHandler(deps: BlobHandlerDeps): BlobHandler {
  return async (ctx) => {
    const digest = ctx.route.digest;
    if (!digest || (ctx.method !== 'GET' && ctx.method !== 'HEAD')) return deps.passthrough(ctx);
    const stored = deps.engine.store.peek(digest);
    if (stored && kindOf(stored.meta) === 'manifest') {
      // A manifest's digest asked for as a blob: never the stored bytes (they may be private,
      // and are kept as a manifest); upstream answers this one, uncached.
      return deps.passthrough(ctx);
    }
    const request = accessRequest(ctx, deps, digest);
    if (ctx.method === 'HEAD') {
      // open, not peek: another process's commit is a hit here too.
      const handle = await deps.engine.open(digest);
      if (handle) return serveStored(ctx, deps, request, handle);
      return headMiss(ctx, deps);
    }
    let result: BlobResult;
    try {
      result = await deps.engine.get(digest, fetchFor(ctx, deps, request.headers), {
        registry: ctx.registry,
        ...(ctx.route.name ? { name: ctx.route.name } : {}),
        meta: blobMeta(request.requestClass),
      });
    } catch (error) {
      ctx.outcome.cacheStatus = 'MISS';
      sendError(ctx, error);
      return;
    }
    await serveResult(ctx, deps, request, result);
  };
}

async function serveResult(
  ctx: RequestContext,
  deps: BlobHandlerDeps,
  request: AccessRequest,
  result: BlobResult,
): Promise<void> {
  switch (result.kind) {
    case 'stored':
      return serveStored(ctx, deps, request, result.handle);
    case 'fill':
      return serveFill(ctx, deps, request, result);
    case 'declined':
      ctx.outcome.cacheStatus = 'BYPASS';
      ctx.outcome.upstreamMs = result.response.headersMs;
      // The engine hands back what fetchFor's upstream request returned.
      return relayResponse(ctx, result.response as UpstreamResponse);
    case 'contended':
      return deps.passthrough(ctx);
  }
}

/** This request's auth class and the headers it goes upstream with (policy/auth-class.ts). */
function accessRequest(ctx: RequestContext, deps: BlobHandlerDeps, digest: string): AccessRequest {
  const requestClass = deps.auth.classifyRequest(ctx.req.headers, deps.credentials.has(ctx));
  return { digest, requestClass, headers: fillHeaders(ctx, deps) };
}

function fillHeaders(ctx: RequestContext, deps: BlobHandlerDeps): HeaderMap {
  const headers = endToEndHeaders(ctx.req.headers);
  for (const name of NOT_FOR_FILL) delete headers[name];
  // Byte-exact: a CDN must not compress what is hashed.
  headers['accept-encoding'] = 'identity';
  return deps.credentials.apply(ctx, headers);
}

/** The fill's upstream GET. It outlives this client: no clientGone signal here. */
function fetchFor(ctx: RequestContext, deps: BlobHandlerDeps, headers: HeaderMap) {
  // A takeover of a dead process's fill resumes with a Range (blob-engine/resume.ts).
  return (resume?: FillResume) =>
    deps.upstream.request(ctx.target, {
      method: 'GET',
      path: ctx.pathAndQuery,
      headers: resume ? { ...headers, range: `bytes=${resume.offset}-` } : headers,
    });
}

function blobHeaders(digest: string, length: number | undefined): OutgoingHttpHeaders {
  return {
    'content-type': 'application/octet-stream',
    ...(length === undefined ? {} : { 'content-length': length }),
    'docker-content-digest': digest,
    etag: blobEtag(digest),
    'accept-ranges': 'bytes',
    'docker-distribution-api-version': 'registry/2.0',
  };
}

/** Writes the status line for a blob of `size` bytes and the chosen range; null when done. */
function writeBlobHead(
  ctx: RequestContext,
  digest: string,
  size: number,
  range: RangeResult,
): { start: number; end: number } | null {
  if (range.kind === 'unsatisfiable') {
    const body = ociErrorBody('BLOB_UNKNOWN', 'requested range not satisfiable');
    ctx.outcome.error = 'DRP_RANGE_INVALID';
    writeHead(ctx, 416, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      'content-range': `bytes */${size}`,
      'docker-distribution-api-version': 'registry/2.0',
    });
    ctx.res.end(ctx.method === 'HEAD' ? undefined : body);
    return null;
  }
  if (range.kind === 'partial') {
    writeHead(ctx, 206, {
      ...blobHeaders(digest, range.end - range.start + 1),
      'content-range': `bytes ${range.start}-${range.end}/${size}`,
    });
    return { start: range.start, end: range.end + 1 };
  }
  writeHead(ctx, 200, blobHeaders(digest, size));
  return { start: 0, end: size };
}

async function serveStored(
  ctx: RequestContext,
  deps: BlobHandlerDeps,
  request: AccessRequest,
  blob: ContentHandle,
): Promise<void> {
  try {
    // peek may not have known it yet (stored as a manifest by another process): never the bytes.
    if (kindOf(blob.meta) === 'manifest') return await deps.passthrough(ctx);
    if (await deps.access.allowed(ctx, request, fetchedByOf(blob.meta))) await serveHit(ctx, deps, blob);
  } finally {
    await blob.release();
  }
}

async function serveHit(ctx: RequestContext, deps: BlobHandlerDeps, blob: ContentHandle): Promise<void> {
  ctx.outcome.cacheStatus = 'HIT';
  deps.events.publish('hit', {
    kind: 'blob',
    digest: blob.digest,
    size: blob.size,
    registry: ctx.registry,
    ...(ctx.route.name ? { name: ctx.route.name } : {}),
  });
  const etag = blobEtag(blob.digest);
  if (notModified(ctx.req.headers, etag)) {
    writeHead(ctx, 304, { etag, 'docker-content-digest': blob.digest });
    ctx.res.end();
    return;
  }
  const span = writeBlobHead(ctx, blob.digest, blob.size, rangeFor(ctx.req.headers, blob.size, etag));
  if (!span) return;
  if (ctx.method === 'HEAD' || span.end === span.start) {
    ctx.res.end();
    return;
  }
  await send(ctx, readAtSource(blob.read, span.start, span.end));
}

async function headMiss(ctx: RequestContext, deps: BlobHandlerDeps): Promise<void> {
  ctx.outcome.cacheStatus = 'MISS';
  let response: UpstreamResponse;
  try {
    response = await deps.upstream.request(ctx.target, {
      method: 'HEAD',
      path: ctx.pathAndQuery,
      headers: deps.credentials.apply(ctx, endToEndHeaders(ctx.req.headers)),
      signal: ctx.clientGone,
    });
  } catch (error) {
    sendError(ctx, error);
    return;
  }
  await relayResponse(ctx, response);
}

async function serveFill(
  ctx: RequestContext,
  deps: BlobHandlerDeps,
  request: AccessRequest,
  fill: Extract<BlobResult, { kind: 'fill' }>,
): Promise<void> {
  const { digest } = request;
  const { cursor, size } = fill;
  ctx.outcome.cacheStatus = 'MISS';
  try {
    const range: RangeResult =
      size === undefined ? { kind: 'full' } : rangeFor(ctx.req.headers, size, blobEtag(digest));
    if (range.kind === 'partial') cursor.narrow(range.start, range.end + 1);
    if (fill.leader) {
      ctx.outcome.upstreamMs = fill.upstreamMs;
      deps.access.grant(ctx, request);
    } else if (!(await deps.access.allowed(ctx, request, fetchedByOf(fill.meta)))) {
      return;
    }
    const info = { registry: ctx.registry, ...(ctx.route.name ? { name: ctx.route.name } : {}) };
    deps.events.publish('miss', { kind: 'blob', digest, size: size ?? 0, ...info });
    if (ctx.clientGone.aborted) return;
    if (size === undefined) {
      // No Content-Length upstream: chunked to the client; the final chunk waits for verification.
      writeHead(ctx, 200, blobHeaders(digest, undefined));
    } else {
      const span = writeBlobHead(ctx, digest, size, range);
      if (!span) return;
      if (span.end === span.start) {
        ctx.res.end();
        return;
      }
    }
    await send(ctx, cursor.next);
  } finally {
    cursor.close();
  }
}

/** Sends a body to the client; a failure cuts the connection (headers are already out). */
async function send(ctx: RequestContext, source: ChunkSource): Promise<void> {
  try {
    await pump(ctx.res, source);
  } catch (error) {
    if (ctx.clientGone.aborted) return;
    sendError(ctx, error);
  }
}
