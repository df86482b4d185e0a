/**
 * Per-request state that flows through the handlers: what was asked, for which registry, and
 * what the access log will say about it. Handlers fill `outcome` as they decide.
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
  readonly res: ServerResponse;
  readonly target: UpstreamTarget;
  /** `host:port` of the target, the key used everywhere a registry is named. */
  readonly registry: string;
  readonly method: string;
  /** Path without query. */
  readonly pathname: string;
  /** Path with query, as sent upstream. */
  readonly pathAndQuery: string;
  readonly route: Route;
  readonly startedAt: number;
  /** Aborted when the client goes away; fills that must outlive the client ignore it. */
  readonly clientGone: AbortSignal;
  readonly outcome: OutcomeDraft;
}
