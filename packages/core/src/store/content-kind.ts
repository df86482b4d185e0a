/**
 * What a stored digest is, and who fetched it, kept in the entry's metadata.
 *
 * Blobs and manifests share one content-addressed store, but a digest stored as a blob is
 * served only as a blob and one stored as a manifest only as a manifest: otherwise the manifest
 * route would hand out any layer (read whole into memory) and the blob route any manifest.
 *
 * `drp-fetched-by` is the auth class (policy/auth-class.ts) of the request that first fetched
 * it. Content fetched anonymously or with the central credentials is what every client can
 * get anyway, so it is shared; content fetched with a client's own credentials is private and
 * reaches another class only after that class's own upstream check.
 */
import type { AuthClass } from '../policy/auth-class.js';
import type { BlobMeta } from './blob-store.js';

export const KIND_KEY = 'drp-kind';
export const FETCHED_BY_KEY = 'drp-fetched-by';

export type ContentKind = 'blob' | 'manifest';

/** Entries written before kinds were recorded: manifests always carried a content type. */
export function kindOf(meta: BlobMeta | undefined): ContentKind {
  const kind = meta?.[KIND_KEY];
  if (kind === 'blob' || kind === 'manifest') return kind;
  return meta?.['content-type'] !== undefined ? 'manifest' : 'blob';
}

export function fetchedByOf(meta: BlobMeta | undefined): AuthClass | undefined {
  return meta?.[FETCHED_BY_KEY];
}

/** Classes whose content every client may read without asking upstream. */
export function isSharedClass(authClass: AuthClass | undefined): boolean {
  return authClass === undefined || authClass === 'anonymous' || authClass === 'injected';
}

/**
 * `VERIFY_BLOB_ACCESS`: `private` (default) checks content fetched with a client's own
 * credentials before another class gets it; `all` checks every client that did not fetch it
 * itself; `off` never checks (the original's behaviour).
 */
export type AccessCheckMode = 'private' | 'all' | 'off';

/** Whether a request of `requestClass` must ask upstream before getting content `fetchedBy` fetched. */
export function needsAccessCheck(
  mode: AccessCheckMode,
  fetchedBy: AuthClass | undefined,
  requestClass: AuthClass,
): boolean {
  if (mode === 'off') return false;
  if (mode === 'all') return true;
  return !isSharedClass(fetchedBy) && fetchedBy !== requestClass;
}

export function blobMeta(authClass: AuthClass): BlobMeta {
  return { [KIND_KEY]: 'blob', [FETCHED_BY_KEY]: authClass };
}

export function manifestMeta(mediaType: string, authClass: AuthClass): BlobMeta {
  return { [KIND_KEY]: 'manifest', 'content-type': mediaType, [FETCHED_BY_KEY]: authClass };
}
