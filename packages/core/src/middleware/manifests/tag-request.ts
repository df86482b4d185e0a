/** What the by-tag decisions share about one tag request, worked out once. */
import type { RequestContext } from '../../context.js';
import type { AuthClass } from '../../policy/auth-class.js';
import type { TierDecision } from '../../policy/tiers.js';
import type { StoredManifest } from '../../store/manifest-store.js';
import { normaliseAccept, type TagEntry, type TagKey } from '../../store/tag-index.js';
import type { HeaderMap } from '../../upstream/client.js';
import type { ManifestDeps } from './deps.js';
import { manifestRequestHeaders } from './fetch.js';

export interface TagRequest {
  readonly key: TagKey;
  readonly tier: TierDecision;
  /** Manifest cache on (`ENABLE_MANIFEST_CACHE`). */
  readonly enabled: boolean;
  readonly headers: HeaderMap;
  readonly authClass: AuthClass;
  /** The tag index entry for this key and the manifest it names, when both are there. */
  readonly entry: TagEntry | undefined;
  readonly cached: StoredManifest | undefined;
  readonly now: number;
}

export async function tagRequest(ctx: RequestContext, deps: ManifestDeps, tag: string): Promise<TagRequest> {
  const tier = deps.tiers.classify(tag);
  const enabled = deps.tiers.enabled;
  ctx.outcome.requestType = enabled ? tier.requestType : 'manifest-uncached';
  const { headers, authClass } = manifestRequestHeaders(ctx, deps);
  const key: TagKey = {
    registry: ctx.registry,
    name: ctx.route.name ?? '',
    tag,
    accept: normaliseAccept(ctx.req.headers.accept),
    authClass,
  };
  const entry = await deps.tags.get(key);
  const cached = entry ? await deps.store.get(entry.digest) : undefined;
  return { key, tier, enabled, headers, authClass, entry, cached, now: deps.now() };
}

/** The tier a new tag entry is recorded with. */
export function entryTier(t: TagRequest): TagEntry['tier'] {
  return t.enabled ? t.tier.tier : 'uncached';
}
