/**
 * Stale answers: while an upstream fails (unreachable, timeout, 429, 5xx) the last answer drp
 * knows is served, marked. Shared by the manifest and ping handlers.
 */
import type { RequestContext } from '../context.js';
import type { CacheEvents } from '../events.js';
import { type Fetched, failureReason } from './upstream-answer.js';

/** Header drp adds to every answer served stale. */
export const STALE_HEADER = 'x-drp-stale';
export const STALE_HEADERS = { [STALE_HEADER]: '1', warning: '110 - "Response is Stale"' } as const;

/**
 * Records that this request is answered stale because of `fetched` (dropping a streamed answer
 * nobody will read) and returns the reason, for the caller's debug line.
 */
export function markStale(ctx: RequestContext, events: CacheEvents, fetched: Fetched): string {
  if (fetched.kind === 'stream') fetched.response.abort();
  const reason = failureReason(fetched);
  ctx.outcome.cacheStatus = 'STALE';
  const { name, reference } = ctx.route;
  events.publish('stale', {
    registry: ctx.registry,
    ...(name ? { name } : {}),
    ...(reference ? { reference } : {}),
    reason,
  });
  return reason;
}
