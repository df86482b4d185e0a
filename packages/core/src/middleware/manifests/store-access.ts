/**
 * The manifest handler's side of the content store: checking an upstream 200 before it is kept,
 * keeping it (ManifestStore.put owns the rules), and serving a stored manifest, fresh or stale.
 */
import type { OutgoingHttpHeaders } from 'node:http';
import createDebug from 'debug';
import { DrpError } from '../../api/errors.js';
import { writeHead } from '../../api/respond.js';
import type { RequestContext } from '../../context.js';
import type { AuthClass } from '../../policy/auth-class.js';
import { declaredMediaType, digestOf, type StoredManifest } from '../../store/manifest-store.js';
import { headerValue } from '../../upstream/headers.js';
import { markStale, STALE_HEADERS } from '../stale.js';
import type { Buffered, Fetched } from '../upstream-answer.js';
import type { ManifestDeps } from './deps.js';

const debug = createDebug('drp:manifests');

export function serveStored(
  ctx: RequestContext,
  manifest: StoredManifest,
  extra: OutgoingHttpHeaders = {},
): void {
  writeHead(ctx, 200, {
    'content-type': manifest.mediaType || 'application/octet-stream',
    'content-length': manifest.data.length,
    'docker-content-digest': manifest.digest,
    etag: `"${manifest.digest}"`,
    'docker-distribution-api-version': 'registry/2.0',
    ...extra,
  });
  ctx.res.end(ctx.method === 'HEAD' ? undefined : manifest.data);
}

/** Serves the last known manifest because upstream failed with `fetched`. */
export function serveStale(
  ctx: RequestContext,
  deps: ManifestDeps,
  manifest: StoredManifest,
  fetched: Fetched,
): void {
  const reason = markStale(ctx, deps.events, fetched);
  debug('stale %s %s (%s)', ctx.registry, ctx.pathname, reason);
  serveStored(ctx, manifest, STALE_HEADERS);
}

/**
 * Docker schema 1 (deprecated; registries still convert to it for old Accept headers): its
 * digest is not the digest of its bytes, so it can be neither verified nor cached.
 */
export function isSchema1(contentType: string | undefined): boolean {
  return (contentType ?? '').startsWith('application/vnd.docker.distribution.manifest.v1+');
}

/** Checks an upstream 200 manifest: the digest it claims must be the digest of its bytes. */
export function checkManifest(
  fetched: Buffered,
  expected?: string,
): { digest: string; mediaType: string } | DrpError {
  const claimed = headerValue(fetched.headers, 'docker-content-digest') ?? expected;
  let digest: string;
  try {
    digest = digestOf(fetched.data, claimed);
  } catch {
    return new DrpError('DRP_UPSTREAM_PROTOCOL', 'upstream sent an unusable Docker-Content-Digest');
  }
  if ((claimed && claimed !== digest) || (expected && expected !== digest)) {
    return new DrpError('DRP_DIGEST_MISMATCH', `upstream manifest does not match ${expected ?? claimed}`);
  }
  const contentType = headerValue(fetched.headers, 'content-type');
  const mediaType = contentType?.split(';')[0]?.trim() || declaredMediaType(fetched.data) || '';
  return { digest, mediaType };
}

/** Keeps a verified manifest and says so on the events. */
export async function keepManifest(
  deps: ManifestDeps,
  digest: string,
  data: Buffer,
  mediaType: string,
  authClass: AuthClass,
): Promise<void> {
  if (await deps.store.put(digest, data, mediaType, authClass)) {
    deps.events.publish('store', { kind: 'manifest', digest, size: data.length, ms: 0 });
  }
}
