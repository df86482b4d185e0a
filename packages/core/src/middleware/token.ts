/**
 * Token requests: a GET to a realm that an upstream `WWW-Authenticate: Bearer realm=...`
 * challenge named (e.g. `https://auth.docker.io/token?service=...&scope=...`). Passed through
 * byte for byte and never cached, with the configured credentials for the realm's host added
 * when the client sent none (so Docker Hub's token belongs to the configured account). On the
 * way back drp notes a keyed hash of the token with the auth class of the request that got it,
 * which is how later manifest requests bearing that token are classed (policy/auth-class.ts).
 */
import createDebug from 'debug';
import { sendError, writeHead } from '../api/respond.js';
import type { RequestContext } from '../context.js';
import type { Handler } from '../pipeline/step.js';
import type { AuthClassifier } from '../policy/auth-class.js';
import type { UpstreamClient, UpstreamResponse } from '../upstream/client.js';
import type { Credentials } from '../upstream/credentials.js';
import { endToEndHeaders } from '../upstream/headers.js';

const debug = createDebug('drp:auth');

/** Token responses are small JSON documents; bigger bodies are relayed but not inspected. */
const MAX_TOKEN_BODY = 256 * 1024;

export interface TokenDeps {
  readonly upstream: UpstreamClient;
  readonly credentials: Credentials;
  readonly auth: Pick<AuthClassifier, 'classifyRequest' | 'noteToken'>;
}

export function createTokenHandler(deps: TokenDeps): Handler {
  return (ctx) => tokenRequest(ctx, deps);
}

async function tokenRequest(ctx: RequestContext, deps: TokenDeps): Promise<void> {
  ctx.outcome.requestType = 'auth';
  ctx.outcome.cacheStatus = 'BYPASS';
  const own = endToEndHeaders(ctx.req.headers);
  const authClass = deps.auth.classifyRequest(ctx.req.headers, deps.credentials.has(ctx));
  let response: UpstreamResponse;
  try {
    response = await deps.upstream.request(ctx.target, {
      method: ctx.method,
      path: ctx.pathAndQuery,
      headers: deps.credentials.apply(ctx, own),
      followRedirects: false,
    });
  } catch (error) {
    sendError(ctx, error);
    return;
  }
  ctx.outcome.upstreamMs = response.headersMs;
  // Never cacheable by anything downstream either.
  writeHead(ctx, response.status, endToEndHeaders(response.headers));
  const chunks: Buffer[] = [];
  let size = 0;
  const inspect = response.status === 200;
  response.body.on('data', (chunk: Buffer) => {
    if (!inspect || size > MAX_TOKEN_BODY) return;
    size += chunk.length;
    if (size <= MAX_TOKEN_BODY) chunks.push(chunk);
  });
  response.body.on('error', (error: unknown) => {
    response.abort();
    sendError(ctx, error);
  });
  response.body.once('end', () => {
    if (!inspect || size > MAX_TOKEN_BODY) return;
    try {
      const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        token?: unknown;
        access_token?: unknown;
        expires_in?: unknown;
      };
      const expires = typeof parsed.expires_in === 'number' ? parsed.expires_in : undefined;
      for (const token of new Set([parsed.token, parsed.access_token])) {
        if (typeof token === 'string' && token !== '') deps.auth.noteToken(token, authClass, expires);
      }
      debug('token issued by %s for class %s', ctx.registry, authClass.split(':')[0]);
    } catch {
      debug('token response from %s is not JSON', ctx.registry);
    }
  });
  response.body.pipe(ctx.res);
}
