/** Writing responses: OCI error bodies and the original's cache headers. */
import type { OutgoingHttpHeaders } from 'node:http';
import { pipeline } from 'node:stream/promises';
import type { RequestContext } from '../context.js';
import type { UpstreamResponse } from '../upstream/client.js';
import { endToEndHeaders } from '../upstream/headers.js';
import { DrpError, isDrpError, ociErrorBody } from './errors.js';

/** The original's response headers, kept for tools that read them. */
export const CACHE_STATUS_HEADER = 'x-docker-registry-proxy-cache-upstream-status';
export const CACHE_TYPE_HEADER = 'x-docker-registry-proxy-cache-type';

/** Writes the status line and headers, adding the cache headers from the context's outcome. */
export function writeHead(ctx: RequestContext, status: number, headers: OutgoingHttpHeaders): void {
  ctx.res.writeHead(status, {
    ...headers,
    [CACHE_STATUS_HEADER]: ctx.outcome.cacheStatus,
    [CACHE_TYPE_HEADER]: ctx.outcome.requestType,
  });
}

/**
 * Answers with an OCI error body. When headers are already sent there is no way to signal an
 * error in HTTP/1.1 but to cut the connection, so the client never mistakes a partial body
 * for a complete one.
 */
export function sendError(ctx: RequestContext, error: unknown): void {
  const drpError = isDrpError(error)
    ? error
    : new DrpError('DRP_INTERNAL', 'internal error', { cause: error });
  ctx.outcome.error = drpError.code;
  const { res } = ctx;
  if (res.headersSent) {
    res.destroy(drpError);
    return;
  }
  if (res.destroyed) return;
  const body = ociErrorBody(drpError.oci, drpError.message, drpError.detail);
  writeHead(ctx, drpError.status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'docker-distribution-api-version': 'registry/2.0',
  });
  res.end(ctx.method === 'HEAD' ? undefined : body);
}

/**
 * Relays an upstream answer as it is (status, end-to-end headers, body streamed with
 * backpressure); nothing is cached. A failure mid-body cuts the client (see sendError).
 */
export async function relayResponse(ctx: RequestContext, response: UpstreamResponse): Promise<void> {
  writeHead(ctx, response.status, endToEndHeaders(response.headers));
  if (ctx.method === 'HEAD') {
    response.body.resume();
    ctx.res.end();
    return;
  }
  try {
    await pipeline(response.body, ctx.res);
  } catch (error) {
    response.abort();
    if (!ctx.clientGone.aborted) sendError(ctx, error);
  }
}
