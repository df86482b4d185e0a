/**
 * Manifests by digest: immutable, so stored content-addressed in the blob store (one copy for
 * every repository and registry), with their media type in the entry's metadata. Manifests are
 * small (distribution caps them at 4 MiB), so they are handled as buffers; anything bigger
 * passes through uncached. Every write is verified against the digest first.
 */
import { createHash } from 'node:crypto';
import createDebug from 'debug';
import { parseDigest } from '../api/route.js';
import { KIND_KEY, kindOf } from './content-kind.js';

const debug = createDebug('drp:manifests');

/** distribution's own limit on a manifest body. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** The part of the blob store manifests need (store/blob-store.ts implements it). */
export interface ContentBackend {
  peek(
    digest: string,
  ): { readonly size: number; readonly meta: Record<string, string> | undefined } | undefined;
  readBuffer(digest: string): Promise<{ data: Buffer; meta: Record<string, string> | undefined } | undefined>;
  putBuffer(digest: string, data: Buffer, meta?: Record<string, string>): Promise<void>;
}

export interface StoredManifest {
  readonly digest: string;
  readonly data: Buffer;
  readonly mediaType: string;
}

/** `sha256:<hex>` of a buffer, in the algorithm of `like` (sha256 unless told otherwise). */
export function digestOf(data: Buffer, like?: string): string {
  const algorithm = like ? parseDigest(like).algorithm : 'sha256';
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
}

/** The media type a manifest body declares, when it declares one. */
export function declaredMediaType(data: Buffer): string | undefined {
  try {
    const parsed = JSON.parse(data.toString('utf8')) as { mediaType?: unknown };
    return typeof parsed.mediaType === 'string' ? parsed.mediaType : undefined;
  } catch {
    return undefined;
  }
}

export class ManifestStore {
  readonly #backend: ContentBackend;

  constructor(backend: ContentBackend) {
    this.#backend = backend;
  }

  /** A stored manifest; undefined for a miss, and for a digest stored as a blob or too big. */
  async get(digest: string): Promise<StoredManifest | undefined> {
    const entry = this.#backend.peek(digest);
    if (!entry || kindOf(entry.meta) !== 'manifest' || entry.size > MAX_MANIFEST_BYTES) return undefined;
    let found: Awaited<ReturnType<ContentBackend['readBuffer']>>;
    try {
      found = await this.#backend.readBuffer(digest);
    } catch (error) {
      debug('cannot read manifest %s: %O', digest, error);
      return undefined;
    }
    if (!found) return undefined;
    const mediaType = found.meta?.['content-type'] ?? declaredMediaType(found.data) ?? '';
    return { digest, data: found.data, mediaType };
  }

  /**
   * Stores a manifest under its digest. Returns false (and stores nothing) when the bytes do not
   * hash to `digest`, the body is too big, or the store refused; serving never depends on it.
   */
  async put(digest: string, data: Buffer, mediaType: string): Promise<boolean> {
    if (data.length > MAX_MANIFEST_BYTES) return false;
    if (digestOf(data, digest) !== digest) return false;
    try {
      await this.#backend.putBuffer(digest, data, { [KIND_KEY]: 'manifest', 'content-type': mediaType });
      return true;
    } catch (error) {
      debug('cannot store manifest %s: %O', digest, error);
      return false;
    }
  }
}
