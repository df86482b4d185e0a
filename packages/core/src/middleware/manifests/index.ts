/**
 * Manifests: `GET|HEAD /v2/<name>/manifests/<reference>`, by digest (by-digest.ts: immutable,
 * content-addressed) or by tag (by-tag.ts, freshness.ts: the tag index and its tiers). Every
 * upstream request carries the client's Authorization, or the configured credentials for the
 * host when the client sent none (fetch.ts). docs/manifests.md has the whole story.
 */
import { DrpError } from '../../api/errors.js';
import type { RequestContext } from '../../context.js';
import type { Handler } from '../../pipeline/step.js';
import { serveByDigest } from './by-digest.js';
import { serveByTag } from './by-tag.js';
import type { ManifestDeps } from './deps.js';

export type { ManifestDeps } from './deps.js';

export function createManifestHandler(deps: ManifestDeps): Handler {
  return async function manifests(ctx: RequestContext): Promise<void> {
    const { route } = ctx;
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      throw new DrpError('DRP_METHOD_NOT_ALLOWED', `${ctx.method} is not a manifest read`);
    }
    if (route.digest) return serveByDigest(ctx, deps, route.digest);
    if (route.tag) return serveByTag(ctx, deps, route.tag);
    throw new DrpError('DRP_REFERENCE_INVALID', 'manifest reference missing');
  };
}
