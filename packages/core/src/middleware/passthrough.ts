/**
 * Forwards a request upstream and its response back, byte for byte and uncached: `/v2/` pings,
 * tag lists, referrers, token endpoints and anything drp does not recognise. Bodies stream
 * both ways with backpressure; redirects go back to the client untouched.
 */
import { relayResponse, sendError } from '../api/respond.js';
import type { RequestContext } from '../context.js';
import type { Handler } from '../pipeline/step.js';
import type { UpstreamClient, UpstreamResponse } from '../upstream/client.js';
import type { Credentials } from '../upstream/credentials.js';
import { endToEndHeaders, requestHasBody } from '../upstream/headers.js';

export interface PassthroughDeps {
  readonly upstream: UpstreamClient;
  readonly credentials: Credentials;
}

export function createPassthroughHandler(deps: PassthroughDeps): Handler {
  return (ctx) => passthrough(ctx, deps);
}

/** Also called directly by middleware/blobs.ts (until its createBlobHandler(deps) lands). */
export async function passthrough(ctx: RequestContext, services: PassthroughDeps): Promise<void> {
  ctx.outcome.cacheStatus = 'BYPASS';
  const hasBody = requestHasBody(ctx.req.headers);
  let response: UpstreamResponse;
  try {
    response = await services.upstream.request(ctx.target, {
      method: ctx.method,
      path: ctx.pathAndQuery,
      headers: services.credentials.apply(ctx, endToEndHeaders(ctx.req.headers)),
      followRedirects: false,
      ...(hasBody ? { body: ctx.req, readTimeout: false } : {}),
    });
  } catch (error) {
    sendError(ctx, error);
    return;
  }
  ctx.outcome.upstreamMs = response.headersMs;
  await relayResponse(ctx, response);
}
