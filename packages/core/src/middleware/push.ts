/**
 * Push (`ALLOW_PUSH=true`): upload starts, chunks and commits (POST, PATCH, PUT; chunked,
 * monolithic and cross-repository mounts), manifest PUTs and DELETEs are streamed to the
 * upstream as they arrive: never buffered in memory or on disk, no idle timeout while the client
 * takes its time, Content-Length kept, `Location` headers untouched (they are relative, or
 * absolute to the registry, which the client reaches through drp anyway). A manifest PUT or
 * DELETE by tag drops that tag from the tag index, so the next pull sees the new manifest.
 */
import createDebug from 'debug';
import { relayResponse, sendError } from '../api/respond.js';
import type { RequestContext } from '../context.js';
import type { Handler } from '../pipeline/step.js';
import type { TagIndex } from '../store/tag-index.js';
import type { UpstreamClient, UpstreamResponse } from '../upstream/client.js';
import { endToEndHeaders, requestHasBody } from '../upstream/headers.js';

const debug = createDebug('drp:push');

export interface PushDeps {
  readonly upstream: UpstreamClient;
  readonly tags: Pick<TagIndex, 'invalidate'>;
}

export function createPushHandler(deps: PushDeps): Handler {
  return (ctx) => push(ctx, deps);
}

async function push(ctx: RequestContext, deps: PushDeps): Promise<void> {
  ctx.outcome.requestType = 'upload';
  ctx.outcome.cacheStatus = 'BYPASS';
  const headers = endToEndHeaders(ctx.req.headers);
  // Node's server already answered `100 Continue` to the client; upstream gets the body at once.
  delete headers.expect;
  const withBody = requestHasBody(ctx.req.headers);
  if (!withBody) delete headers['content-length'];
  const { route } = ctx;
  const tagWrite = route.kind === 'manifest' && route.tag !== undefined && route.name !== undefined;

  let response: UpstreamResponse;
  try {
    response = await deps.upstream.request(ctx.target, {
      method: ctx.method,
      path: ctx.pathAndQuery,
      // Never the central credentials: a write needs the client's own (policy/injection.ts).
      headers,
      followRedirects: false,
      readTimeout: false,
      ...(withBody ? { body: ctx.req } : {}),
    });
  } catch (error) {
    sendError(ctx, error);
    return;
  }
  ctx.outcome.upstreamMs = response.headersMs;
  if (tagWrite && response.status < 300 && route.name && route.tag) {
    debug('%s %s/%s:%s: dropping cached tag', ctx.method, ctx.registry, route.name, route.tag);
    await deps.tags.invalidate({ registry: ctx.registry, name: route.name, tag: route.tag });
  }
  await relayResponse(ctx, response);
}
