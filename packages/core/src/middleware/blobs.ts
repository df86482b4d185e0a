/**
 * `GET|HEAD /v2/<name>/blobs/<digest>`: served from the content-addressed store when present
 * (no upstream request at all, Range and If-Range honoured), otherwise fetched once through a
 * flight and streamed to every client that asked while it runs.
 *
 * A HEAD on a miss is forwarded as a HEAD (the blob is never downloaded for it). An upstream
 * answer that is not the blob (401 with its challenge, 404, 429...) is relayed untouched and
 * nothing is cached. Other methods on a blob path go through uncached.
 */
import type { OutgoingHttpHeaders } from 'node:http';
import createDebug from 'debug';
import { type OciErrorCode, ociErrorBody } from '../api/errors.js';
import { relayResponse, sendError, writeHead } from '../api/respond.js';
import type { RequestContext } from '../context.js';
import { blobEtag, notModified, type RangeResult, rangeFor } from '../http/range.js';
import { type ChunkSource, fileSource, pump } from '../http/send.js';
import type { AuthClass } from '../policy/auth-class.js';
import type { Services } from '../services.js';
import { AccessGrants } from '../store/access-grants.js';
import type { BlobHandle } from '../store/blob-store.js';
import { blobMeta, fetchedByOf, kindOf, needsAccessCheck } from '../store/content-kind.js';
import type { HeaderMap, UpstreamResponse } from '../upstream/client.js';
import { endToEndHeaders, headerValue } from '../upstream/headers.js';
import { passthrough } from './passthrough.js';

const debug = createDebug('drp:blobs');

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

/** Times a client whose flight was declined (e.g. the leader got a 401) tries again. */
const JOIN_ATTEMPTS = 3;

export async function blobs(ctx: RequestContext, services: Services): Promise<void> {
  const digest = ctx.route.digest;
  if (!digest || (ctx.method !== 'GET' && ctx.method !== 'HEAD')) {
    await passthrough(ctx, services);
    return;
  }
  const stored = services.blobs.peek(digest);
  if (stored && kindOf(stored.meta) === 'manifest') {
    // A manifest's digest asked for as a blob: never the stored bytes (they may be private,
    // and are kept as a manifest); upstream answers this one, uncached.
    await passthrough(ctx, services);
    return;
  }
  const handle = stored ? await services.blobs.open(digest) : undefined;
  if (handle) {
    try {
      if (await accessAllowed(ctx, services, digest, fetchedByOf(handle.meta))) {
        await serveHit(ctx, services, handle);
      }
    } finally {
      await handle.release();
    }
    return;
  }
  if (ctx.method === 'HEAD') {
    await headMiss(ctx, services);
    return;
  }
  await getMiss(ctx, services, digest);
}

/** The auth class of this request as it goes upstream (policy/auth-class.ts). */
function requestClass(ctx: RequestContext, services: Services): AuthClass {
  const clientAuth = headerValue(ctx.req.headers, 'authorization');
  const injected = clientAuth === undefined && services.credentials.has(ctx);
  return services.manifests.auth.classify(clientAuth, injected);
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

async function serveHit(ctx: RequestContext, services: Services, blob: BlobHandle): Promise<void> {
  ctx.outcome.cacheStatus = 'HIT';
  services.events.publish('hit', {
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
  await send(ctx, fileSource(blob.file.fd, span.start, span.end));
}

async function headMiss(ctx: RequestContext, services: Services): Promise<void> {
  ctx.outcome.cacheStatus = 'MISS';
  let response: UpstreamResponse;
  try {
    response = await services.upstream.request(ctx.target, {
      method: 'HEAD',
      path: ctx.pathAndQuery,
      headers: services.credentials.apply(ctx, endToEndHeaders(ctx.req.headers)),
      signal: ctx.clientGone,
    });
  } catch (error) {
    sendError(ctx, error);
    return;
  }
  await relayResponse(ctx, response);
}

function fillHeaders(ctx: RequestContext, services: Services): HeaderMap {
  const headers = endToEndHeaders(ctx.req.headers);
  for (const name of NOT_FOR_FILL) delete headers[name];
  // Byte-exact: a CDN must not compress what is hashed.
  headers['accept-encoding'] = 'identity';
  return services.credentials.apply(ctx, headers);
}

async function getMiss(ctx: RequestContext, services: Services, digest: string): Promise<void> {
  ctx.outcome.cacheStatus = 'MISS';
  const headers = fillHeaders(ctx, services);
  const info = { registry: ctx.registry, ...(ctx.route.name ? { name: ctx.route.name } : {}) };
  const fillInfo = { ...info, meta: blobMeta(requestClass(ctx, services)) };
  for (let attempt = 0; attempt < JOIN_ATTEMPTS; attempt += 1) {
    const { flight, leader } = services.flights.join(
      digest,
      // The fill outlives this client: no clientGone signal here.
      () => services.upstream.request(ctx.target, { method: 'GET', path: ctx.pathAndQuery, headers }),
      fillInfo,
    );
    let start: Awaited<typeof flight.started>;
    try {
      start = await flight.started;
    } catch (error) {
      sendError(ctx, error);
      return;
    }
    if (!start.streaming) {
      if (leader) {
        ctx.outcome.cacheStatus = 'BYPASS';
        ctx.outcome.upstreamMs = start.response.headersMs;
        await relayResponse(ctx, start.response);
        return;
      }
      // The leader's answer was for the leader's credentials: ask again with ours.
      debug('%s: joined a declined fill; retrying', digest);
      continue;
    }
    // Hold a place in the fill before anything else is awaited: the flight keeps its spool
    // open for registered cursors only.
    const size = start.size;
    const range: RangeResult =
      size === undefined ? { kind: 'full' } : rangeFor(ctx.req.headers, size, blobEtag(digest));
    const cursor =
      range.kind === 'partial' ? flight.cursor(range.start, range.end + 1) : flight.cursor(0, size);
    try {
      if (leader) {
        ctx.outcome.upstreamMs = flight.upstreamMs;
        // Upstream just served this client the blob: it may read it.
        if (services.options.verifyBlobAccess !== 'off') {
          services.blobAccess.grant(accessKey(ctx, digest, headers));
        }
      } else if (!(await accessAllowed(ctx, services, digest, fetchedByOf(flight.info.meta)))) {
        return;
      }
      services.events.publish('miss', { kind: 'blob', digest, size: size ?? 0, ...info });
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
    return;
  }
  await passthrough(ctx, services);
}

function accessKey(ctx: RequestContext, digest: string, headers: HeaderMap): string {
  const authorization = headers.authorization;
  return AccessGrants.key(
    ctx.registry,
    ctx.route.name ?? '',
    digest,
    Array.isArray(authorization) ? authorization.join(',') : authorization,
  );
}

const DENIAL_CODES: Record<number, OciErrorCode> = {
  401: 'UNAUTHORIZED',
  403: 'DENIED',
  404: 'BLOB_UNKNOWN',
  429: 'TOOMANYREQUESTS',
};

/**
 * `verifyBlobAccess`: before this client gets bytes another client fetched (`fetchedBy`, see
 * store/content-kind.ts for which ones need it), ask upstream (a HEAD with this client's
 * credentials, redirects not followed: a redirect is a yes) whether it may read the blob. A no
 * is answered like upstream answered it (status, challenge headers, an OCI error body); an
 * unreachable upstream fails closed. Returns false when it answered.
 */
async function accessAllowed(
  ctx: RequestContext,
  services: Services,
  digest: string,
  fetchedBy: AuthClass | undefined,
): Promise<boolean> {
  if (!needsAccessCheck(services.options.verifyBlobAccess, fetchedBy, requestClass(ctx, services))) {
    return true;
  }
  const headers = fillHeaders(ctx, services);
  const key = accessKey(ctx, digest, headers);
  if (services.blobAccess.has(key)) return true;
  let response: UpstreamResponse;
  try {
    response = await services.upstream.request(ctx.target, {
      method: 'HEAD',
      path: ctx.pathAndQuery,
      headers,
      followRedirects: false,
      signal: ctx.clientGone,
    });
  } catch (error) {
    sendError(ctx, error);
    return false;
  }
  response.body.resume();
  if (response.status === 200 || (response.status >= 301 && response.status <= 308)) {
    services.blobAccess.grant(key);
    return true;
  }
  debug('%s: upstream denied %s (%d)', digest, ctx.registry, response.status);
  ctx.outcome.cacheStatus = 'BYPASS';
  const relayed = endToEndHeaders(response.headers);
  for (const name of [
    'content-length',
    'content-type',
    'content-encoding',
    'etag',
    'docker-content-digest',
  ]) {
    delete relayed[name];
  }
  const body = ociErrorBody(
    DENIAL_CODES[response.status] ?? 'UNKNOWN',
    `upstream answered ${response.status}`,
  );
  writeHead(ctx, response.status, {
    ...relayed,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  ctx.res.end(ctx.method === 'HEAD' ? undefined : body);
  return false;
}

/** Sends a body to the client; a failure cuts the connection (headers are already out). */
async function send(ctx: RequestContext, source: ChunkSource): Promise<void> {
  try {
    await pump(ctx.res, source);
  } catch (error) {
    if (ctx.clientGone.aborted) return;
    debug('%s %s: body failed: %s', ctx.method, ctx.pathname, (error as Error).message);
    sendError(ctx, error);
  }
}
