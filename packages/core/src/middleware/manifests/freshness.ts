/**
 * A tag whose manifest is cached (manifest cache on): younger than its tier's TTL it is served
 * without asking upstream (HIT); older, it is revalidated with an upstream HEAD, which Docker
 * Hub does not count as a pull: same digest -> served from the cache (REVALIDATED); another
 * digest -> the caller fetches it (or, for a client's HEAD, the upstream's HEAD answer is it).
 */
import createDebug from 'debug';
import { parseDigest } from '../../api/route.js';
import type { RequestContext } from '../../context.js';
import type { StoredManifest } from '../../store/manifest-store.js';
import type { TagEntry } from '../../store/tag-index.js';
import { headerValue } from '../../upstream/headers.js';
import { type Fetched, failed, relay, relayBuffered } from '../upstream-answer.js';
import type { ManifestDeps } from './deps.js';
import { fetchManifest } from './fetch.js';
import { isSchema1, serveStale, serveStored } from './store-access.js';
import type { TagRequest } from './tag-request.js';

const debug = createDebug('drp:manifests');

/** Answers from the cache when it can; false when the caller must fetch the manifest. */
export async function serveCachedTag(
  ctx: RequestContext,
  deps: ManifestDeps,
  t: TagRequest,
  entry: TagEntry,
  cached: StoredManifest,
): Promise<boolean> {
  const age = t.now - entry.fetchedAt;
  if (age >= 0 && age < t.tier.ttlMs) {
    debug('hit %s/%s:%s (%s)', ctx.registry, t.key.name, t.key.tag, t.tier.explain());
    ctx.outcome.cacheStatus = 'HIT';
    const { digest, data } = cached;
    deps.events.publish('hit', {
      kind: 'manifest',
      digest,
      size: data.length,
      registry: ctx.registry,
      name: t.key.name,
    });
    serveStored(ctx, cached);
    return true;
  }
  const head = await fetchManifest(ctx, deps, 'HEAD', t.headers, true);
  if (failed(head)) {
    serveStale(ctx, deps, cached, head);
    return true;
  }
  if (head.kind !== 'buffered' || head.status !== 200) {
    // 401, 403, 404...: upstream's word on this client and tag goes through unchanged.
    ctx.outcome.cacheStatus = 'EXPIRED';
    await relay(ctx, head);
    return true;
  }
  ctx.outcome.upstreamMs = head.upstreamMs;
  if (headerValue(head.headers, 'docker-content-digest') === entry.digest) {
    await deps.tags.put({ ...entry, fetchedAt: t.now, tier: t.tier.tier });
    ctx.outcome.cacheStatus = 'REVALIDATED';
    serveStored(ctx, cached);
    return true;
  }
  if (ctx.method !== 'HEAD') return false; // changed (or no digest header): fetch it
  // Changed, and the client only asked for headers: the upstream's HEAD answer is it.
  ctx.outcome.cacheStatus = 'EXPIRED';
  await rememberHead(deps, t, head, t.tier.tier);
  relayBuffered(ctx, head);
  return true;
}

/**
 * Records what an upstream HEAD said a tag points to. containerd resolves a tag with HEAD and
 * then GETs the manifest by digest, which stores it; with this entry the next client asking for
 * the tag (same class) is served from the cache too.
 */
export async function rememberHead(
  deps: ManifestDeps,
  t: TagRequest,
  head: Fetched,
  tier: TagEntry['tier'],
): Promise<void> {
  if (head.kind !== 'buffered' || head.status !== 200) return;
  const digest = headerValue(head.headers, 'docker-content-digest');
  const contentType = headerValue(head.headers, 'content-type') ?? '';
  if (!digest || isSchema1(contentType)) return;
  try {
    parseDigest(digest);
  } catch {
    return;
  }
  const size = Number(headerValue(head.headers, 'content-length') ?? 0);
  await deps.tags.put({
    ...t.key,
    digest,
    mediaType: contentType.split(';')[0]?.trim() ?? '',
    size: Number.isFinite(size) ? size : 0,
    fetchedAt: t.now,
    tier,
  });
}
