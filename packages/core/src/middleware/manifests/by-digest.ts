/**
 * Manifests by digest. A stored manifest is served without asking upstream when it was fetched
 * anonymously (public) or by the same auth class as this request; any other client first
 * proves its right with an upstream HEAD (free on Docker Hub), so a manifest fetched with one
 * client's credentials never reaches another client that upstream would refuse. A miss is
 * fetched with GET, verified against the digest and stored; a client's HEAD stays a HEAD.
 */
import { DrpError } from '../../api/errors.js';
import { sendError } from '../../api/respond.js';
import type { RequestContext } from '../../context.js';
import type { AuthClass } from '../../policy/auth-class.js';
import { needsAccessCheck } from '../../store/content-kind.js';
import type { StoredManifest } from '../../store/manifest-store.js';
import type { HeaderMap } from '../../upstream/client.js';
import { headerValue } from '../../upstream/headers.js';
import { relay, relayBuffered } from '../upstream-answer.js';
import type { ManifestDeps } from './deps.js';
import { fetchManifest, manifestRequestHeaders, sharedGet } from './fetch.js';
import { checkManifest, isSchema1, keepManifest, serveStored } from './store-access.js';

export async function serveByDigest(ctx: RequestContext, deps: ManifestDeps, digest: string): Promise<void> {
  ctx.outcome.requestType = 'manifest-by-digest';
  const { headers, authClass } = manifestRequestHeaders(ctx, deps);
  // Only what was stored as a manifest, and never more than a manifest can be: a layer's digest
  // asked for here is fetched from upstream like any miss (and not stored over the blob).
  const stored = await deps.store.get(digest);
  if (stored) return serveKnown(ctx, deps, stored, headers, authClass);
  ctx.outcome.cacheStatus = 'MISS';
  if (ctx.method === 'HEAD') return relay(ctx, await fetchManifest(ctx, deps, 'HEAD', headers));
  deps.events.publish('miss', { kind: 'manifest', digest, size: 0, registry: ctx.registry });
  const flightKey = `${ctx.registry}\0${ctx.route.name ?? ''}@${ctx.route.reference ?? ''}\0${authClass}`;
  const fetched = await sharedGet(ctx, deps, flightKey, headers);
  if (fetched.kind !== 'buffered' || fetched.status !== 200) return relay(ctx, fetched);
  if (isSchema1(headerValue(fetched.headers, 'content-type'))) return relayBuffered(ctx, fetched);
  const checked = checkManifest(fetched, digest);
  if (checked instanceof DrpError) {
    const size = fetched.data.length;
    deps.events.publish('verify-failed', {
      digest,
      size,
      registry: ctx.registry,
      reason: 'mismatch',
      received: size,
    });
    return sendError(ctx, checked);
  }
  await keepManifest(deps, digest, fetched.data, checked.mediaType, authClass);
  relayBuffered(ctx, fetched);
}

async function serveKnown(
  ctx: RequestContext,
  deps: ManifestDeps,
  stored: StoredManifest,
  headers: HeaderMap,
  authClass: AuthClass,
): Promise<void> {
  if (!needsAccessCheck(deps.verifyBlobAccess, stored.fetchedBy, authClass)) {
    ctx.outcome.cacheStatus = 'HIT';
    const { digest, data } = stored;
    deps.events.publish('hit', { kind: 'manifest', digest, size: data.length, registry: ctx.registry });
    return serveStored(ctx, stored);
  }
  const check = await fetchManifest(ctx, deps, 'HEAD', headers);
  if (check.kind === 'buffered' && check.status === 200) {
    ctx.outcome.cacheStatus = 'REVALIDATED';
    ctx.outcome.upstreamMs = check.upstreamMs;
    return serveStored(ctx, stored);
  }
  // Upstream refused this client (or is failing: without its word, nothing private is served).
  ctx.outcome.cacheStatus = 'BYPASS';
  await relay(ctx, check);
}
