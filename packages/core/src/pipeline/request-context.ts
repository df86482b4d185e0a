/**
 * Builds the RequestContext of one request. Until the request target is parsed only a printable
 * raw path is known; the getters read whatever the lifecycle has decided so far.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { describeRawTarget, type RequestTarget } from '../api/request-target.js';
import type { Route } from '../api/route.js';
import type { OutcomeDraft, RequestContext } from '../context.js';
import { targetKey, type UpstreamTarget } from '../upstream/target.js';

/** What the lifecycle decides about a request, step by step; the context reads it. */
export interface Decisions {
  requestTarget: RequestTarget | undefined;
  route: Route;
  inject: boolean;
}

export function createRequestContext(
  req: IncomingMessage,
  res: ServerResponse,
  target: UpstreamTarget,
  clientGone: AbortSignal,
  decisions: Decisions,
): RequestContext {
  const rawUrl = req.url ?? '/';
  const outcome: OutcomeDraft = {
    requestType: 'other',
    cacheStatus: 'BYPASS',
    upstreamMs: undefined,
    error: undefined,
  };
  return {
    req,
    res,
    target,
    registry: targetKey(target),
    method: (req.method ?? 'GET').toUpperCase(),
    get pathname() {
      return decisions.requestTarget?.pathname ?? describeRawTarget(rawUrl);
    },
    get query() {
      return decisions.requestTarget?.query;
    },
    get pathAndQuery() {
      return decisions.requestTarget?.pathAndQuery ?? '/';
    },
    get route() {
      return decisions.route;
    },
    get inject() {
      return decisions.inject;
    },
    clientAuth: req.headers.authorization !== undefined,
    withholdCredentials() {
      decisions.inject = false;
    },
    startedAt: performance.now(),
    clientGone,
    outcome,
  };
}
