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
  /** The canonical path (api/request-target.ts), without query. */
  readonly pathname: string;
  /** The raw query without `?`, if any. */
  readonly query: string | undefined;
  /** Canonical path with query, as sent upstream. */
  readonly pathAndQuery: string;
  readonly route: Route;
  /** Whether the central credentials may be added to this request (reads only). */
  readonly inject: boolean;
  readonly startedAt: number;
  /** Aborted when the client goes away; fills that must outlive the client ignore it. */
  readonly clientGone: AbortSignal;
  readonly outcome: OutcomeDraft;
}
