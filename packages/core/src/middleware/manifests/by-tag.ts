/**
 * Manifests by tag. The tag index maps (registry, repository, tag, Accept, auth class) to a
 * digest; a cached, fresh entry is served by freshness.ts. Otherwise upstream is asked (MISS,
 * or BYPASS with the manifest cache off, whose answer is still remembered). Upstream failing
 * (429, 5xx, timeout, unreachable): the last known manifest for that key is served stale,
 * whatever the cache setting; with nothing known, the upstream's answer goes through unchanged.
 */
import { DrpError } from '../../api/errors.js';
import { sendError } from '../../api/respond.js';
import type { RequestContext } from '../../context.js';
import { headerValue } from '../../upstream/headers.js';
import { type Buffered, failed, relay, relayBuffered } from '../upstream-answer.js';
import type { ManifestDeps } from './deps.js';
import { fetchManifest, sharedGet } from './fetch.js';
import { rememberHead, serveCachedTag } from './freshness.js';
import { checkManifest, isSchema1, keepManifest, serveStale } from './store-access.js';
import { entryTier, type TagRequest, tagRequest } from './tag-request.js';

export async function serveByTag(ctx: RequestContext, deps: ManifestDeps, tag: string): Promise<void> {
  const t = await tagRequest(ctx, deps, tag);
  if (t.enabled && t.entry && t.cached && (await serveCachedTag(ctx, deps, t, t.entry, t.cached))) return;
  ctx.outcome.cacheStatus = t.enabled ? 'MISS' : 'BYPASS';
  const { cached } = t;
  if (ctx.method === 'HEAD') {
    const head = await fetchManifest(ctx, deps, 'HEAD', t.headers, cached !== undefined);
    if (cached && failed(head)) return serveStale(ctx, deps, cached, head);
    await rememberHead(deps, t, head, entryTier(t));
    return relay(ctx, head);
  }
  const { key } = t;
  const flightKey = `${key.registry}\0${key.name}\0${key.tag}\0${key.accept}\0${key.authClass}`;
  const fetched = await sharedGet(ctx, deps, flightKey, t.headers, cached !== undefined);
  if (cached && failed(fetched)) return serveStale(ctx, deps, cached, fetched);
  if (fetched.kind !== 'buffered' || fetched.status !== 200) return relay(ctx, fetched);
  if (isSchema1(headerValue(fetched.headers, 'content-type'))) {
    // Signed schema 1: its digest covers the payload without signatures; never cached.
    ctx.outcome.cacheStatus = 'BYPASS';
    return relayBuffered(ctx, fetched);
  }
  await keepAndServe(ctx, deps, t, fetched);
}

/** A verified new manifest for the tag: stored, indexed and served with its digest. */
async function keepAndServe(
  ctx: RequestContext,
  deps: ManifestDeps,
  t: TagRequest,
  fetched: Buffered,
): Promise<void> {
  const checked = checkManifest(fetched);
  if (checked instanceof DrpError) {
    if (t.cached) return serveStale(ctx, deps, t.cached, { kind: 'error', error: checked });
    return sendError(ctx, checked);
  }
  const { digest, mediaType } = checked;
  const size = fetched.data.length;
  deps.events.publish('miss', { kind: 'manifest', digest, size, registry: ctx.registry, name: t.key.name });
  await keepManifest(deps, digest, fetched.data, mediaType, t.authClass);
  await deps.tags.put({ ...t.key, digest, mediaType, size, fetchedAt: t.now, tier: entryTier(t) });
  relayBuffered(ctx, { ...fetched, headers: { ...fetched.headers, 'docker-content-digest': digest } });
}
