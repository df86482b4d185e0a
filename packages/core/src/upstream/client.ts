/**
 * The one way drp talks to upstream registries and their CDNs: byte-exact (no decompression),
 * explicit connect / response / idle-read timeouts but no cap on a whole transfer, keep-alive,
 * redirects of every kind followed for GET and HEAD (credentials never cross to another host:
 * got strips `authorization` on a cross-origin hop; never from https to http), mapped addresses,
 * extra CAs and the destination guard (agents.ts).
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import createDebug from 'debug';
import type { Got, Request as GotRequest, PlainResponse } from 'got';
import { DrpError } from '../api/errors.js';
import type { ResolvedUpstream } from '../options.js';
import { createAgents, type UpstreamAgents } from './agents.js';
import { BearerTokens, parseBearerChallenge } from './bearer.js';
import type { Credentials } from './credentials.js';
import { PROXY_ERROR_CODE } from './proxy.js';
import { targetOrigin, type UpstreamTarget } from './target.js';

const debug = createDebug('drp:upstream');

/** Request headers as drp sends them upstream. */
import type { HeaderMap } from './headers.js';

export type { HeaderMap };

export interface UpstreamRequest {
  readonly method: string;
  /** Origin-form path and query, e.g. `/v2/library/alpine/blobs/sha256:...`. */
  readonly path: string;
  readonly headers?: HeaderMap;
  /** Streamed request body (uploads). Never buffered. */
  readonly body?: Readable;
  /** Follow redirects. Default: true for GET and HEAD, false otherwise. */
  readonly followRedirects?: boolean;
  /** Apply the idle read timeout. Default true; uploads turn it off (the client sets the pace). */
  readonly readTimeout?: boolean;
  readonly signal?: AbortSignal;
}

export interface UpstreamResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** The response body. Errors while reading it are DrpErrors too. */
  readonly body: Readable;
  /** Final host after redirects (no query string: signed URLs must not leak into logs). */
  readonly finalHost: string;
  readonly redirects: number;
  /** Milliseconds from the request until the response headers. */
  readonly headersMs: number;
  /** Stops the transfer and frees the connection. */
  abort(): void;
}

/** What every upstream exchange reports (the cache turns it into an `upstream` event). */
export interface UpstreamObservation {
  readonly target: UpstreamTarget;
  readonly method: string;
  readonly status: number | undefined;
  readonly headers: IncomingHttpHeaders | undefined;
  readonly ms: number;
  readonly error: DrpError | undefined;
}

/** What the client reports to, and borrows from, the cache that owns it. */
export interface UpstreamHooks {
  readonly credentials?: Credentials;
  readonly observe?: (observation: UpstreamObservation) => void;
}

export class UpstreamClient {
  /** got and its dependencies (~17 MB resident) load on the first upstream request, not at start. */
  #got: Promise<Got> | undefined;
  readonly #agents: UpstreamAgents;
  readonly #options: ResolvedUpstream;
  readonly #tokens: BearerTokens | undefined;
  readonly #observe: ((observation: UpstreamObservation) => void) | undefined;

  /**
   * `hooks.credentials`: for the token realms of targets with `tokens: 'drp'` (see bearer.ts);
   * `hooks.observe`: told of every upstream answer or error (status pages, rate limits).
   */
  constructor(options: ResolvedUpstream, hooks: UpstreamHooks = {}) {
    this.#options = options;
    this.#observe = hooks.observe;
    const credentials = hooks.credentials;
    this.#tokens = credentials
      ? new BearerTokens(credentials, (target, path, headers) => this.#fetchText(target, path, headers))
      : undefined;
    this.#agents = createAgents(options);
  }

  #client(): Promise<Got> {
    const options = this.#options;
    this.#got ??= import('got').then(({ default: got }) =>
      got.extend({
        agent: { http: this.#agents.http, https: this.#agents.https },
        decompress: false,
        throwHttpErrors: false,
        retry: { limit: 0 },
        http2: false,
        ...(options.ipFamily ? { dnsLookupIpVersion: options.ipFamily } : {}),
        https: { rejectUnauthorized: options.verifyTls },
        // got adds its own user-agent unless told not to; registries see the client's.
        headers: { 'user-agent': undefined },
        hooks: { beforeRedirect: [refuseDowngrade] },
      }),
    );
    return this.#got;
  }

  /** Sends a request; resolves when response headers arrive, rejects with a DrpError before that. */
  async request(target: UpstreamTarget, request: UpstreamRequest): Promise<UpstreamResponse> {
    const response = await this.#send(target, request);
    if (response.status !== 401 || target.tokens !== 'drp' || !this.#tokens) return response;
    const method = request.method.toUpperCase();
    if (
      (method !== 'GET' && method !== 'HEAD') ||
      request.body ||
      request.headers?.authorization !== undefined
    ) {
      return response;
    }
    const challenge = parseBearerChallenge(response.headers['www-authenticate']);
    const token = challenge ? await this.#tokens.token(challenge) : undefined;
    // No token: the registry's 401 goes to the client unchanged.
    if (!token) return response;
    response.abort();
    return this.#send(target, {
      ...request,
      headers: { ...request.headers, authorization: `Bearer ${token}` },
    });
  }

  /** One small GET, body as text (token requests). */
  async #fetchText(
    target: UpstreamTarget,
    path: string,
    headers: Record<string, string>,
  ): Promise<{ status: number; body: string }> {
    const response = await this.#send(target, { method: 'GET', path, headers });
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of response.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > 64 * 1024) {
        response.abort();
        break;
      }
      chunks.push(chunk);
    }
    return { status: response.status, body: Buffer.concat(chunks).toString('utf8') };
  }

  async #send(target: UpstreamTarget, request: UpstreamRequest): Promise<UpstreamResponse> {
    const client = await this.#client();
    const method = request.method.toUpperCase();
    const follow = request.followRedirects ?? (method === 'GET' || method === 'HEAD');
    const url = `${targetOrigin(target)}${request.path}`;
    const started = performance.now();
    const timeouts = this.#options;
    const stream: GotRequest = client.stream(url, {
      method: method as 'GET',
      headers: request.headers ?? {},
      followRedirect: follow,
      maxRedirects: this.#options.maxRedirects,
      timeout: {
        lookup: timeouts.connectTimeoutMs,
        connect: timeouts.connectTimeoutMs,
        secureConnect: timeouts.connectTimeoutMs,
        response: timeouts.responseTimeoutMs,
        ...(request.readTimeout === false ? {} : { socket: timeouts.readTimeoutMs }),
      },
      ...(request.body ? { body: request.body } : {}),
      ...(request.signal ? { signal: request.signal } : {}),
    });
    // got ends a stream request by itself only for GET and HEAD; any other method without a
    // body (a manifest DELETE) would never be sent, and never time out, without this.
    if (!request.body && method !== 'GET' && method !== 'HEAD') stream.end();

    let redirects = 0;
    stream.on('redirect', () => {
      redirects += 1;
    });

    return new Promise((resolve, reject) => {
      const onError = (error: Error) => {
        const mapped = toDrpError(error, target);
        this.#observe?.({
          target,
          method,
          status: undefined,
          headers: undefined,
          ms: performance.now() - started,
          error: mapped,
        });
        reject(mapped);
      };
      stream.once('error', onError);
      stream.once('response', (response: PlainResponse) => {
        stream.off('error', onError);
        const finalHost = new URL(response.url).host;
        const headersMs = performance.now() - started;
        // Never a query string in a log: CDN redirects and token requests carry signatures.
        debug(
          '%s %s%s -> %d in %dms (%d redirects)',
          method,
          target.host,
          request.path.split('?')[0],
          response.statusCode,
          Math.round(headersMs),
          redirects,
        );
        this.#observe?.({
          target,
          method,
          status: response.statusCode,
          headers: response.headers,
          ms: headersMs,
          error: undefined,
        });
        resolve({
          status: response.statusCode,
          headers: response.headers,
          body: streamsBody(method, response)
            ? responseBody(stream, response, target)
            : mapBodyErrors(stream, target),
          finalHost,
          redirects,
          headersMs,
          abort: () => stream.destroy(),
        });
      });
    });
  }

  close(): void {
    this.#agents.destroy();
  }
}

/** A redirect from https to http would hand a TLS-protected request to anyone on the path. */
function refuseDowngrade(next: { url?: string | URL | undefined }, response: PlainResponse): void {
  const to = next.url instanceof URL ? next.url : new URL(String(next.url));
  if (new URL(response.url).protocol === 'https:' && to.protocol !== 'https:') {
    throw Object.assign(new Error(`refused redirect from https to ${to.protocol.replace(/:$/, '')}`), {
      code: 'DRP_REDIRECT_REFUSED',
    });
  }
}

/** Bodies this big are read from the response itself (responseBody); smaller ones through got. */
const DIRECT_BODY_BYTES = 64 * 1024;

/**
 * A GET's large body (a blob). Only those: a response without a body can end before its
 * consumer listens, and only got's stream keeps that 'end' until someone reads.
 */
function streamsBody(method: string, response: PlainResponse): boolean {
  const length = Number(response.headers['content-length']);
  return method === 'GET' && response.statusCode === 200 && length >= DIRECT_BODY_BYTES;
}

/**
 * The body read straight from the response got exposes (got still owns the request: agent,
 * redirects, timeouts, proxy), not through got's Duplex, which per 16 KiB TLS record adds a
 * 'readable' tick, a read(), a progress event and a push of its own (measured: 0.4 CPU s per GB,
 * bench/stages `download-got` against `download-got-response`). got reads the response only
 * when its own stream is read, which nobody does now; its 'readable' listener goes, so the
 * response can flow. Errors got sees (its timeouts) end the body with the same DrpError.
 */
function responseBody(stream: GotRequest, response: PlainResponse, target: UpstreamTarget): Readable {
  const body = response as unknown as Readable;
  body.removeAllListeners('readable');
  stream.once('error', (error: Error) => {
    if (!body.destroyed) body.destroy(error);
  });
  // The response's own errors (a connection cut mid-body) are mapped like got's.
  stream.on('error', () => undefined);
  return mapBodyErrors(body, target);
}

/** Rewrites errors emitted while the body streams, so consumers only ever see DrpErrors. */
function mapBodyErrors(stream: Readable, target: UpstreamTarget): Readable {
  const emit = stream.emit.bind(stream);
  stream.emit = ((event: string | symbol, ...args: unknown[]) => {
    if (event === 'error' && args[0] instanceof Error && !(args[0] instanceof DrpError)) {
      return emit('error', toDrpError(args[0], target));
    }
    return emit(event, ...args);
  }) as typeof stream.emit;
  return stream;
}

const TLS_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'ERR_SSL_WRONG_VERSION_NUMBER',
]);

/** Maps a transport error onto a stable drp code. Messages name the host, never credentials. */
export function toDrpError(error: Error, target: UpstreamTarget): DrpError {
  if (error instanceof DrpError) return error;
  const code = (error as { code?: string }).code ?? '';
  const where = `${target.host}:${target.port}`;
  if (code === 'DRP_DESTINATION_BLOCKED') {
    const reason = (error.cause instanceof Error ? error.cause : error).message;
    return new DrpError('DRP_DESTINATION_BLOCKED', `upstream ${where}: ${reason}`, { cause: error });
  }
  if (code === 'DRP_REDIRECT_REFUSED') {
    const reason = (error.cause instanceof Error ? error.cause : error).message;
    return new DrpError('DRP_REDIRECT_REFUSED', `upstream ${where}: ${reason}`, { cause: error });
  }
  if (code === PROXY_ERROR_CODE) {
    // The message names the proxy (without credentials) and what it did.
    return new DrpError('DRP_UPSTREAM_PROXY', `${error.message} (for ${where})`, { cause: error });
  }
  if (error.name === 'TimeoutError' || code === 'ETIMEDOUT') {
    return new DrpError('DRP_UPSTREAM_TIMEOUT', `upstream ${where} timed out`, { cause: error });
  }
  if (error.name === 'MaxRedirectsError' || code === 'ERR_TOO_MANY_REDIRECTS') {
    return new DrpError('DRP_TOO_MANY_REDIRECTS', `upstream ${where} redirected too many times`, {
      cause: error,
    });
  }
  if (TLS_CODES.has(code) || code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL')) {
    return new DrpError('DRP_UPSTREAM_TLS', `TLS to upstream ${where} failed: ${code}`, { cause: error });
  }
  if (error.name === 'ReadError' || code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE') {
    return new DrpError('DRP_UPSTREAM_TRUNCATED', `upstream ${where} closed the connection early`, {
      cause: error,
    });
  }
  if (['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH'].includes(code)) {
    return new DrpError('DRP_UPSTREAM_UNREACHABLE', `upstream ${where} unreachable: ${code}`, {
      cause: error,
    });
  }
  return new DrpError('DRP_UPSTREAM_PROTOCOL', `upstream ${where} failed: ${code || error.message}`, {
    cause: error,
  });
}
