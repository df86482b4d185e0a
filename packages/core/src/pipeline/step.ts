/**
 * Steps: the pipeline's unit of composition, `(ctx, next) => Promise<void>` (the onion shape of
 * undici's interceptors and koa). A step may answer the request itself and not call `next`
 * (deny), call `next` and look at `ctx.outcome` afterwards (audit), or adjust what the lifecycle
 * lets it adjust before calling `next` (see RequestContext).
 */
import type { RequestContext } from '../context.js';

/** Serves one request kind; built by a factory from only what it uses (middleware/*). */
export type Handler = (ctx: RequestContext) => Promise<void>;

export type Next = () => Promise<void>;
export type Step = (ctx: RequestContext, next: Next) => Promise<void>;

/**
 * Composes steps into one: each runs around the ones after it, the last one's `next` is
 * `last`. Calling `next` twice in one step is a bug and rejects.
 */
export function compose(steps: readonly Step[]): (ctx: RequestContext, last: Next) => Promise<void> {
  for (const step of steps) {
    if (typeof step !== 'function') throw new TypeError('every step must be a function (ctx, next)');
  }
  return (ctx, last) => {
    let reached = -1;
    const run = (i: number): Promise<void> => {
      if (i <= reached) return Promise.reject(new Error('next() called more than once in one step'));
      reached = i;
      const step = steps[i];
      if (!step) return last();
      return step(ctx, () => run(i + 1));
    };
    return run(0);
  };
}
