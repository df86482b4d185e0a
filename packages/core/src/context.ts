/**
 * Per-request state that flows through steps and handlers: what was asked, for which registry,
 * and what the access log will say about it. Handlers fill `outcome` as they decide. Everything
 * the security rules depend on (target, route, method, injection) is read-only: a step may
 * answer the request itself, narrow the injection decision, or add response headers.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Route } from './api/route.js';
import type { CacheStatus, RequestType } from './events.js';
import type { UpstreamTarget } from './upstream/target.js';

export interface OutcomeDraft {
  requestType: RequestType;
  cacheStatus: CacheStatus;
  upstreamMs: number | undefined;
  error: import('./api/errors.js').DrpErrorCode | undefined;
}

export interface RequestContext {
  readonly req: IncomingMessage;
  /** The response, through a view that counts body bytes (pipeline/counted-response.ts). */
  readonly res: ServerResponse;
  readonly target: UpstreamTarget;
  /** `host:port` of the target, the key used everywhere a registry is named. */
  readonly registry: string;
  readonly method: string;
  /** The canonical path (api/request-target.ts), without query. */
  readonly pathname: string;
  /** The raw query without `?`, if any. */
  readonly query: string | undefined;
  /** Canonical path with query, as sent upstream. */
  readonly pathAndQuery: string;
  readonly route: Route;
  /** Whether the central credentials may be added to this request (reads only). */
  readonly inject: boolean;
  /** Whether the client sent credentials of its own (an Authorization header). */
  readonly clientAuth: boolean;
  /** Makes `inject` false for this request (a step may narrow the decision, never widen it). */
  withholdCredentials(): void;
  readonly startedAt: number;
  /** Aborted when the client goes away; fills that must outlive the client ignore it. */
  readonly clientGone: AbortSignal;
  readonly outcome: OutcomeDraft;
}
