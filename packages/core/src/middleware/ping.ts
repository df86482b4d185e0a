/**
 * The `/v2/` ping: passed through, and its last answer remembered (middleware/ping-memory.ts).
 * While the upstream fails (unreachable, timeout, 429, 5xx) drp replays that answer, typically
 * the 401 challenge, marked stale, so clients get as far as the manifest request, which can
 * then be served stale too. With nothing remembered the upstream's error goes through unchanged.
 */
import type { OutgoingHttpHeaders } from 'node:http';
import createDebug from 'debug';
import { writeHead } from '../api/respond.js';
import type { RequestContext } from '../context.js';
import type { CacheEvents } from '../events.js';
import type { Handler } from '../pipeline/step.js';
import type { AuthClassifier } from '../policy/auth-class.js';
import type { UpstreamClient } from '../upstream/client.js';
import type { Credentials } from '../upstream/credentials.js';
import { endToEndHeaders } from '../upstream/headers.js';
import { keptHeaders, type PingAnswer, type PingMemory } from './ping-memory.js';
import { markStale, STALE_HEADERS } from './stale.js';
import {
  type Fetched,
  failed,
  readSmall,
  relay,
  relayBuffered,
  toDrp,
  withDeadline,
} from './upstream-answer.js';

const debug = createDebug('drp:ping');

/** A ping answer bigger than this is passed through but not remembered. */
const MAX_PING_BODY = 64 * 1024;

export interface PingDeps {
  readonly upstream: UpstreamClient;
  readonly credentials: Credentials;
  readonly auth: Pick<AuthClassifier, 'noteChallenge'>;
  readonly pings: PingMemory;
  readonly events: CacheEvents;
  readonly staleTimeoutMs: number;
  readonly now: () => number;
}

export function createPingHandler(deps: PingDeps): Handler {
  return async function ping(ctx: RequestContext): Promise<void> {
    ctx.outcome.requestType = 'ping';
    ctx.outcome.cacheStatus = 'BYPASS';
    const own = endToEndHeaders(ctx.req.headers);
    delete own['content-length'];
    const headers = deps.credentials.apply(ctx, own);
    const key = `${ctx.registry}\0${headers.authorization === undefined ? 'anonymous' : 'authorized'}`;
    // With a remembered answer at hand, upstream gets only the stale timeout to answer.
    const remembered = await deps.pings.get(key);
    const limit = remembered ? deps.staleTimeoutMs : 0;
    const fetched = await withDeadline(limit, ctx.registry, async (signal) => {
      try {
        const response = await deps.upstream.request(ctx.target, {
          method: ctx.method,
          path: ctx.pathAndQuery,
          headers,
          followRedirects: false,
          ...(signal ? { signal } : {}),
        });
        deps.auth.noteChallenge(response.headers['www-authenticate']);
        return await readSmall(response, MAX_PING_BODY, ctx.method === 'HEAD');
      } catch (error) {
        return { kind: 'error', error: toDrp(error) };
      }
    });
    const failing = failed(fetched, 'any');
    if (failing && remembered) return replay(ctx, deps, remembered, fetched);
    if (fetched.kind !== 'buffered') return relay(ctx, fetched);
    if (!failing && ctx.method === 'GET') {
      await deps.pings.put(key, {
        status: fetched.status,
        headers: keptHeaders(fetched.headers),
        body: fetched.data.toString('base64'),
        at: deps.now(),
      });
    }
    relayBuffered(ctx, fetched, true);
  };
}

function replay(ctx: RequestContext, deps: PingDeps, last: PingAnswer, fetched: Fetched): void {
  const reason = markStale(ctx, deps.events, fetched);
  debug('stale ping for %s (%s)', ctx.registry, reason);
  const body = Buffer.from(last.body, 'base64');
  const out: OutgoingHttpHeaders = { ...last.headers, 'content-length': body.length, ...STALE_HEADERS };
  writeHead(ctx, last.status, out);
  ctx.res.end(ctx.method === 'HEAD' ? undefined : body);
}
