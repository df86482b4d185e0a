/**
 * The `/v2/` ping: passed through, and its last answer remembered per registry (and per
 * "client sent credentials or not"), in memory and in `<cacheDir>/drp-ping/`. While the
 * upstream fails (unreachable, timeout, 429, 5xx) drp replays that answer, typically the 401
 * challenge, marked stale, so clients get as far as the manifest request, which can then be
 * served stale too. With nothing remembered the upstream's error goes through unchanged.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import createDebug from 'debug';
import { DrpError } from '../api/errors.js';
import { sendError, writeHead } from '../api/respond.js';
import type { RequestContext } from '../context.js';
import type { Services } from '../services.js';
import type { UpstreamResponse } from '../upstream/client.js';
import { endToEndHeaders, headerValue } from '../upstream/headers.js';
import { type Fetched, isUpstreamFailure, readSmall, STALE_HEADER, toDrp } from './manifests.js';

const debug = createDebug('drp:ping');

export const PING_DIR = 'drp-ping';
/** A ping answer bigger than this is passed through but not remembered. */
const MAX_PING_BODY = 64 * 1024;
/** Response headers worth replaying; everything else (dates, ratelimit counters) is not. */
const KEPT_HEADERS = ['www-authenticate', 'content-type', 'docker-distribution-api-version'];

export interface PingAnswer {
  readonly status: number;
  readonly headers: Record<string, string | string[]>;
  /** Base64 body. */
  readonly body: string;
  readonly at: number;
}

export class PingMemory {
  readonly #dir: string;
  readonly #memo = new Map<string, PingAnswer | null>();

  constructor(cacheDir: string) {
    this.#dir = join(cacheDir, PING_DIR);
  }

  #file(key: string): string {
    return join(this.#dir, `${createHash('sha256').update(key).digest('hex').slice(0, 40)}.json`);
  }

  async get(key: string): Promise<PingAnswer | undefined> {
    const memo = this.#memo.get(key);
    if (memo !== undefined) return memo ?? undefined;
    let answer: PingAnswer | null = null;
    try {
      const parsed = JSON.parse(await readFile(this.#file(key), 'utf8')) as PingAnswer & { key?: string };
      if (parsed.key === key && typeof parsed.status === 'number') answer = parsed;
    } catch {
      // never seen
    }
    this.#memo.set(key, answer);
    return answer ?? undefined;
  }

  async put(key: string, answer: PingAnswer): Promise<void> {
    const previous = this.#memo.get(key);
    this.#memo.set(key, answer);
    // Pings are frequent; rewrite the file only when the answer changed.
    if (previous && previous.status === answer.status && previous.body === answer.body) return;
    const file = this.#file(key);
    const tmp = `${file}.${randomUUID()}.tmp`;
    try {
      await mkdir(this.#dir, { recursive: true, mode: 0o700 });
      await writeFile(tmp, JSON.stringify({ key, ...answer }), { mode: 0o600 });
      await rename(tmp, file);
    } catch (error) {
      debug('cannot persist ping answer: %O', error);
      await rm(tmp, { force: true }).catch(() => undefined);
    }
  }
}

function keptHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const kept: Record<string, string | string[]> = {};
  for (const name of KEPT_HEADERS) {
    const value = headers[name];
    if (value !== undefined) kept[name] = value;
  }
  return kept;
}

export async function ping(ctx: RequestContext, services: Services): Promise<void> {
  ctx.outcome.requestType = 'ping';
  ctx.outcome.cacheStatus = 'BYPASS';
  const own = endToEndHeaders(ctx.req.headers);
  delete own['content-length'];
  const headers = services.credentials.apply(ctx, own);
  const key = `${ctx.registry}\0${headers.authorization === undefined ? 'anonymous' : 'authorized'}`;
  const pings = services.manifests.pings;

  // With a remembered answer at hand, upstream gets only the stale timeout to answer.
  const remembered = await pings.get(key);
  const limit = remembered ? services.options.upstream.staleTimeoutMs : 0;
  const deadline = new AbortController();
  const timer = limit > 0 ? setTimeout(() => deadline.abort(), limit) : undefined;
  let fetched: Fetched;
  try {
    const response: UpstreamResponse = await services.upstream.request(ctx.target, {
      method: ctx.method,
      path: ctx.pathAndQuery,
      headers,
      followRedirects: false,
      signal: deadline.signal,
    });
    services.manifests.auth.noteChallenge(response.headers['www-authenticate']);
    fetched = await readSmall(response, MAX_PING_BODY, ctx.method === 'HEAD');
  } catch (error) {
    fetched = { kind: 'error', error: toDrp(error) };
  } finally {
    clearTimeout(timer);
  }
  if (deadline.signal.aborted) {
    const error = new DrpError(
      'DRP_UPSTREAM_TIMEOUT',
      `upstream ${ctx.registry} did not answer within ${limit}ms`,
    );
    fetched = { kind: 'error', error };
  }

  const failing =
    fetched.kind === 'error' ||
    (fetched.kind === 'buffered' && isUpstreamFailure(fetched.status)) ||
    (fetched.kind === 'stream' && isUpstreamFailure(fetched.response.status));
  if (failing) {
    const last = remembered;
    if (last) {
      if (fetched.kind === 'stream') fetched.response.abort();
      const reason = fetched.kind === 'error' ? fetched.error.code : `upstream ${statusOf(fetched)}`;
      ctx.outcome.cacheStatus = 'STALE';
      services.events.publish('stale', { registry: ctx.registry, reason });
      debug('stale ping for %s (%s)', ctx.registry, reason);
      const body = Buffer.from(last.body, 'base64');
      const out: OutgoingHttpHeaders = {
        ...last.headers,
        'content-length': body.length,
        [STALE_HEADER]: '1',
        warning: '110 - "Response is Stale"',
      };
      writeHead(ctx, last.status, out);
      ctx.res.end(ctx.method === 'HEAD' ? undefined : body);
      return;
    }
  }

  if (fetched.kind === 'error') {
    sendError(ctx, fetched.error);
    return;
  }
  if (fetched.kind === 'stream') {
    const { response, head } = fetched;
    ctx.outcome.upstreamMs = response.headersMs;
    writeHead(ctx, response.status, endToEndHeaders(response.headers));
    ctx.res.write(head);
    response.body.resume();
    response.body.pipe(ctx.res);
    return;
  }
  ctx.outcome.upstreamMs = fetched.upstreamMs;
  if (!failing && ctx.method === 'GET') {
    await pings.put(key, {
      status: fetched.status,
      headers: keptHeaders(fetched.headers),
      body: fetched.data.toString('base64'),
      at: services.options.now(),
    });
  }
  const out: OutgoingHttpHeaders = endToEndHeaders(fetched.headers);
  if (ctx.method !== 'HEAD' || headerValue(fetched.headers, 'content-length') === undefined) {
    out['content-length'] = fetched.data.length;
  }
  writeHead(ctx, fetched.status, out);
  ctx.res.end(ctx.method === 'HEAD' ? undefined : fetched.data);
}

function statusOf(fetched: Fetched): number {
  if (fetched.kind === 'buffered') return fetched.status;
  if (fetched.kind === 'stream') return fetched.response.status;
  return 0;
}
