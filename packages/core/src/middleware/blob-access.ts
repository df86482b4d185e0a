/**
 * `verifyBlobAccess`: before a client gets bytes another client fetched (`fetchedBy`, see
 * store/content-kind.ts for which ones need it), ask upstream (a HEAD with this client's
 * credentials, redirects not followed: a redirect is a yes) whether it may read the blob. A no
 * is answered like upstream answered it (status, challenge headers, an OCI error body); an
 * unreachable upstream fails closed.
 */
import createDebug from 'debug';
import { type OciErrorCode, ociErrorBody } from '../api/errors.js';
import { sendError, writeHead } from '../api/respond.js';
import type { RequestContext } from '../context.js';
import type { AuthClass } from '../policy/auth-class.js';
import { AccessGrants } from '../store/access-grants.js';
import { type AccessCheckMode, needsAccessCheck } from '../store/content-kind.js';
import type { HeaderMap, UpstreamClient, UpstreamResponse } from '../upstream/client.js';
import { endToEndHeaders } from '../upstream/headers.js';

const debug = createDebug('drp:blobs');

const DENIAL_CODES: Record<number, OciErrorCode> = {
  401: 'UNAUTHORIZED',
  403: 'DENIED',
  404: 'BLOB_UNKNOWN',
  429: 'TOOMANYREQUESTS',
};

/** Headers of an upstream denial that must not reach the client with drp's own error body. */
const BODY_HEADERS = ['content-length', 'content-type', 'content-encoding', 'etag', 'docker-content-digest'];

export interface BlobAccessDeps {
  readonly mode: AccessCheckMode;
  readonly grants: AccessGrants;
  readonly upstream: Pick<UpstreamClient, 'request'>;
}

/** What a blob request needs to decide on access: its class and its upstream headers. */
export interface AccessRequest {
  readonly digest: string;
  readonly requestClass: AuthClass;
  readonly headers: HeaderMap;
}

export interface BlobAccess {
  /** Whether this request may get content `fetchedBy` fetched; false when it answered the client. */
  allowed(ctx: RequestContext, request: AccessRequest, fetchedBy: AuthClass | undefined): Promise<boolean>;
  /** Upstream just served this client the blob: it may read it. */
  grant(ctx: RequestContext, request: AccessRequest): void;
}

export function createBlobAccess(deps: BlobAccessDeps): BlobAccess {
  const keyOf = (ctx: RequestContext, request: AccessRequest) => {
    const authorization = request.headers.authorization;
    const who = Array.isArray(authorization) ? authorization.join(',') : authorization;
    return AccessGrants.key(ctx.registry, ctx.route.name ?? '', request.digest, who);
  };
  return {
    grant(ctx, request) {
      if (deps.mode !== 'off') deps.grants.grant(keyOf(ctx, request));
    },
    async allowed(ctx, request, fetchedBy) {
      if (!needsAccessCheck(deps.mode, fetchedBy, request.requestClass)) return true;
      const key = keyOf(ctx, request);
      if (deps.grants.has(key)) return true;
      let response: UpstreamResponse;
      try {
        response = await deps.upstream.request(ctx.target, {
          method: 'HEAD',
          path: ctx.pathAndQuery,
          headers: request.headers,
          followRedirects: false,
          signal: ctx.clientGone,
        });
      } catch (error) {
        sendError(ctx, error);
        return false;
      }
      response.body.resume();
      if (response.status === 200 || (response.status >= 301 && response.status <= 308)) {
        deps.grants.grant(key);
        return true;
      }
      debug('%s: upstream denied %s (%d)', request.digest, ctx.registry, response.status);
      answerDenial(ctx, response);
      return false;
    },
  };
}

function answerDenial(ctx: RequestContext, response: UpstreamResponse): void {
  ctx.outcome.cacheStatus = 'BYPASS';
  const relayed = endToEndHeaders(response.headers);
  for (const name of BODY_HEADERS) delete relayed[name];
  const body = ociErrorBody(
    DENIAL_CODES[response.status] ?? 'UNKNOWN',
    `upstream answered ${response.status}`,
  );
  writeHead(ctx, response.status, {
    ...relayed,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  ctx.res.end(ctx.method === 'HEAD' ? undefined : body);
}
