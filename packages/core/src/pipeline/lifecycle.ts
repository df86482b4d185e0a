/**
 * The request lifecycle: one canonical parse of the request target -> route -> method policy
 * and injection decision -> user steps -> handler -> outcome event. Nothing before the parse
 * looks at the path; nothing after it re-parses.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { DrpError } from '../api/errors.js';
import { parseRequestTarget } from '../api/request-target.js';
import { sendError } from '../api/respond.js';
import { routeOf } from '../api/route.js';
import type { RequestContext } from '../context.js';
import type { CacheEvents, RequestOutcome } from '../events.js';
import type { UpstreamTarget } from '../upstream/target.js';
import { countedResponse } from './counted-response.js';
import { decide, type Refusal } from './method-policy.js';
import { createRequestContext, type Decisions } from './request-context.js';
import type { HandlerName } from './routes.js';
import { compose, type Handler, type Step } from './step.js';

export interface LifecycleDeps {
  readonly events: CacheEvents;
  readonly allowPush: boolean;
  readonly handlers: Readonly<Record<HandlerName, Handler>>;
  readonly steps: readonly Step[];
  /** Whether a path outside /v2/ is a token realm an upstream challenge named. */
  readonly isTokenRequest: (ctx: RequestContext) => boolean;
}

const REFUSALS: Record<Refusal, (ctx: RequestContext) => DrpError> = {
  'method-not-allowed': (ctx) =>
    new DrpError('DRP_METHOD_NOT_ALLOWED', `${ctx.method} is not allowed through this proxy`),
  'push-disabled': () =>
    new DrpError('DRP_PUSH_DISABLED', 'push is disabled on this proxy (set ALLOW_PUSH=true to allow it)'),
};

export function createLifecycle(deps: LifecycleDeps) {
  const run = compose(deps.steps);

  /** Parse, route, decide, then the user steps around the chosen handler. */
  async function serve(ctx: RequestContext, decisions: Decisions): Promise<void> {
    decisions.requestTarget = parseRequestTarget(ctx.req.url ?? '/');
    decisions.route = routeOf(decisions.requestTarget.pathname);
    const decision = decide({
      route: decisions.route,
      method: ctx.method,
      query: ctx.query,
      allowPush: deps.allowPush,
      isTokenRequest: () => deps.isTokenRequest(ctx),
    });
    ctx.outcome.requestType = decision.requestType;
    decisions.inject = decision.inject;
    const chosen = decision.handler;
    await run(ctx, async () => {
      if (chosen === 'method-not-allowed' || chosen === 'push-disabled') {
        ctx.outcome.cacheStatus = 'BYPASS';
        sendError(ctx, REFUSALS[chosen](ctx));
        return;
      }
      await deps.handlers[chosen](ctx);
    });
  }

  /** Serves one request; never rejects (failures become OCI error responses). */
  return async function handle(
    req: IncomingMessage,
    rawRes: ServerResponse,
    target: UpstreamTarget,
  ): Promise<RequestOutcome> {
    const gone = new AbortController();
    const onClose = () => {
      if (!rawRes.writableFinished) gone.abort();
    };
    rawRes.once('close', onClose);
    const counted = countedResponse(rawRes);
    const decisions: Decisions = { requestTarget: undefined, route: { kind: 'other' }, inject: false };
    const ctx = createRequestContext(req, counted.res, target, gone.signal, decisions);
    try {
      await serve(ctx, decisions);
    } catch (error) {
      sendError(ctx, error);
    }
    if (!rawRes.writableFinished && !rawRes.destroyed) {
      await new Promise<void>((resolve) => rawRes.once('close', resolve));
    }
    rawRes.off('close', onClose);
    const result = outcomeOf(ctx, rawRes, counted.bytes());
    deps.events.publish('request', result);
    return result;
  };
}

function outcomeOf(ctx: RequestContext, res: ServerResponse, bytes: number): RequestOutcome {
  const { outcome } = ctx;
  return {
    method: ctx.method,
    registry: ctx.registry,
    path: ctx.pathname,
    requestType: outcome.requestType,
    cacheStatus: outcome.cacheStatus,
    status: res.statusCode,
    bytes,
    upstreamMs: outcome.upstreamMs === undefined ? undefined : Math.round(outcome.upstreamMs),
    totalMs: Math.round(performance.now() - ctx.startedAt),
    error: outcome.error,
    aborted: !res.writableFinished,
  };
}
