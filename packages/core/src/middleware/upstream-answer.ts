/**
 * Small upstream answers (manifests, pings, errors), read whole so they can be verified, shared
 * or replayed, and relayed to the client unchanged. Shared by the manifest and ping handlers.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { DrpError, isDrpError } from '../api/errors.js';
import { sendError, writeHead } from '../api/respond.js';
import type { RequestContext } from '../context.js';
import type { UpstreamResponse } from '../upstream/client.js';
import { endToEndHeaders, headerValue } from '../upstream/headers.js';

/** A whole upstream answer (bodies of manifests and errors are small), or a transport error. */
export type Fetched =
  | Buffered
  | { readonly kind: 'error'; readonly error: DrpError }
  /** Too big to buffer: only the request that started it can stream it. */
  | { readonly kind: 'stream'; readonly response: UpstreamResponse; readonly head: Buffer };

export interface Buffered {
  readonly kind: 'buffered';
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly data: Buffer;
  readonly upstreamMs: number;
}

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

/** An upstream status after which a stale answer is served when there is one. */
export function isUpstreamFailure(status: number): boolean {
  return status === 429 || status >= 500;
}

export function toDrp(error: unknown): DrpError {
  return isDrpError(error) ? error : new DrpError('DRP_INTERNAL', 'internal error', { cause: error });
}

export function statusOf(fetched: Fetched): number {
  if (fetched.kind === 'buffered') return fetched.status;
  if (fetched.kind === 'stream') return fetched.response.status;
  return 0;
}

/** True when this answer means "upstream is failing" rather than "upstream said no". */
export function failed(fetched: Fetched, transportErrors: 'any' | 'stale-worthy' = 'stale-worthy'): boolean {
  if (fetched.kind === 'error') return transportErrors === 'any' || STALE_ERRORS.has(fetched.error.code);
  return isUpstreamFailure(statusOf(fetched));
}

export function failureReason(fetched: Fetched): string {
  return fetched.kind === 'error' ? fetched.error.code : `upstream ${statusOf(fetched)}`;
}

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
    const settle = (fetched: Fetched) => {
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', onError);
      resolve(fetched);
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size <= limit) return;
      body.pause();
      settle({ kind: 'stream', response, head: Buffer.concat(chunks) });
    };
    const onEnd = () => {
      const data = Buffer.concat(chunks);
      const { status, headers, headersMs } = response;
      settle({ kind: 'buffered', status, headers, data, upstreamMs: headersMs });
    };
    const onError = (error: unknown) => settle({ kind: 'error', error: toDrp(error) });
    body.on('data', onData);
    body.once('end', onEnd);
    body.once('error', onError);
  });
}

/**
 * Runs an upstream exchange with at most `limitMs` to answer completely (0: no limit of its
 * own); past it the answer is a DRP_UPSTREAM_TIMEOUT error.
 */
export async function withDeadline(
  limitMs: number,
  registry: string,
  exchange: (signal: AbortSignal | undefined) => Promise<Fetched>,
): Promise<Fetched> {
  if (limitMs <= 0) return exchange(undefined);
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), limitMs);
  try {
    const fetched = await exchange(deadline.signal);
    if (!deadline.signal.aborted) return fetched;
    if (fetched.kind === 'stream') fetched.response.abort();
    const message = `upstream ${registry} did not answer within ${limitMs}ms`;
    return { kind: 'error', error: new DrpError('DRP_UPSTREAM_TIMEOUT', message) };
  } finally {
    clearTimeout(timer);
  }
}

/** Writes a buffered upstream answer (error or not) to the client unchanged. */
export function relayBuffered(ctx: RequestContext, fetched: Buffered, keepHeadLength = false): void {
  ctx.outcome.upstreamMs = fetched.upstreamMs;
  const headers: OutgoingHttpHeaders = endToEndHeaders(fetched.headers);
  const declared = headerValue(fetched.headers, 'content-length') !== undefined;
  if (ctx.method !== 'HEAD' || (keepHeadLength && !declared)) headers['content-length'] = fetched.data.length;
  writeHead(ctx, fetched.status, headers);
  ctx.res.end(ctx.method === 'HEAD' ? undefined : fetched.data);
}

export async function relayStream(
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

export async function relay(ctx: RequestContext, fetched: Fetched): Promise<void> {
  if (fetched.kind === 'buffered') relayBuffered(ctx, fetched);
  else if (fetched.kind === 'stream') await relayStream(ctx, fetched);
  else sendError(ctx, fetched.error);
}
