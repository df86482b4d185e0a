/**
 * Asking upstream for a manifest: the request headers (and the auth class they put the request
 * in), one bounded exchange, and one shared GET per key at a time.
 */
import { DrpError } from '../../api/errors.js';
import type { RequestContext } from '../../context.js';
import type { AuthClass } from '../../policy/auth-class.js';
import { MAX_MANIFEST_BYTES } from '../../store/manifest-store.js';
import type { HeaderMap } from '../../upstream/client.js';
import { endToEndHeaders } from '../../upstream/headers.js';
import { type Fetched, readSmall, toDrp, withDeadline } from '../upstream-answer.js';
import type { ManifestDeps } from './deps.js';

/** Request headers never forwarded for a manifest: drp wants a whole body it can verify and keep. */
const DROPPED_REQUEST_HEADERS = ['if-none-match', 'if-modified-since', 'if-match', 'range', 'if-range'];

/** Headers for an upstream manifest request, and the auth class they put it in. */
export function manifestRequestHeaders(
  ctx: RequestContext,
  deps: ManifestDeps,
): { headers: HeaderMap; authClass: AuthClass } {
  const own = endToEndHeaders(ctx.req.headers);
  for (const name of DROPPED_REQUEST_HEADERS) delete own[name];
  delete own['content-length'];
  return {
    headers: deps.credentials.apply(ctx, own),
    authClass: deps.auth.classifyRequest(ctx.req.headers, deps.credentials.has(ctx)),
  };
}

/**
 * Asks upstream for a manifest. With `staleAtHand`, a stale answer is ready to be served, so
 * upstream gets only `staleTimeout` (not the full response timeout) to answer completely: an
 * upstream that accepts connections but never answers must not hold a fully cached pull.
 */
export function fetchManifest(
  ctx: RequestContext,
  deps: ManifestDeps,
  method: 'GET' | 'HEAD',
  headers: HeaderMap,
  staleAtHand = false,
): Promise<Fetched> {
  const limit = staleAtHand ? deps.staleTimeoutMs : 0;
  return withDeadline(limit, ctx.registry, async (signal) => {
    try {
      const path = ctx.pathAndQuery;
      const response = await deps.upstream.request(ctx.target, {
        method,
        path,
        headers,
        ...(signal ? { signal } : {}),
      });
      deps.auth.noteChallenge(response.headers['www-authenticate']);
      return whole(await readSmall(response, MAX_MANIFEST_BYTES, method === 'HEAD'));
    } catch (error) {
      return { kind: 'error', error: toDrp(error) };
    }
  });
}

/**
 * Bigger than any registry allows a manifest to be (distribution's 4 MiB): never relayed
 * unverified, never buffered without bound.
 */
function whole(fetched: Fetched): Fetched {
  if (fetched.kind !== 'stream') return fetched;
  fetched.response.abort();
  const message = `upstream manifest is larger than ${MAX_MANIFEST_BYTES} bytes (answer ${fetched.response.status})`;
  return { kind: 'error', error: new DrpError('DRP_MANIFEST_TOO_LARGE', message) };
}

/** One upstream GET per key at a time; followers share a buffered answer. */
export async function sharedGet(
  ctx: RequestContext,
  deps: ManifestDeps,
  flightKey: string,
  headers: HeaderMap,
  staleAtHand = false,
): Promise<Fetched> {
  const running = deps.flights.get(flightKey);
  if (running) {
    const result = await running;
    // A streamed answer belongs to the request that started it.
    if (result.kind !== 'stream') return result;
  }
  const flight = fetchManifest(ctx, deps, 'GET', headers, staleAtHand);
  deps.flights.set(flightKey, flight);
  try {
    return await flight;
  } finally {
    if (deps.flights.get(flightKey) === flight) deps.flights.delete(flightKey);
  }
}
