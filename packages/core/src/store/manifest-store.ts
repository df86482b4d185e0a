/**
 * Manifests by digest: immutable, so stored content-addressed in the blob store (one copy for
 * every repository and registry), with their media type in the entry's metadata. Manifests are
 * small (distribution caps them at 4 MiB), so they are handled as buffers; anything bigger
 * passes through uncached. Every write is verified against the digest first.
 */
import { createHash } from 'node:crypto';
import createDebug from 'debug';
import { parseDigest } from '../api/route.js';
import type { AuthClass } from '../policy/auth-class.js';
import { fetchedByOf, isSharedClass, kindOf, manifestMeta } from './content-kind.js';

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
  /**
   * `peek` with a look at the disk: an entry another process sharing the directory committed
   * (BlobStore implements it; a store without it is one process's alone).
   */
  discover?(
    digest: string,
  ): Promise<{ readonly size: number; readonly meta: Record<string, string> | undefined } | undefined>;
}

export interface StoredManifest {
  readonly digest: string;
  readonly data: Buffer;
  readonly mediaType: string;
  /** The auth class of the request that stored it (store/content-kind.ts). */
  readonly fetchedBy: AuthClass | undefined;
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
  /** The entry as this process knows it, or as the disk has it (another process's commit). */
  async #info(digest: string): Promise<ReturnType<ContentBackend['peek']>> {
    const known = this.#backend.peek(digest);
    if (known || !this.#backend.discover) return known;
    try {
      return await this.#backend.discover(digest);
    } catch (error) {
      debug('cannot look up %s: %O', digest, error);
      return undefined;
    }
  }

  async get(digest: string): Promise<StoredManifest | undefined> {
    const entry = await this.#info(digest);
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
    return { digest, data: found.data, mediaType, fetchedBy: fetchedByOf(found.meta) };
  }

  /**
   * Stores a verified manifest with the auth class that fetched it. Returns true when it was
   * written; false when the bytes do not hash to `digest`, the body is too big, the store
   * refused, or the entry is kept as it is: a digest stored as a blob stays one (a registry
   * serving a layer's bytes as a manifest must not turn the cached layer into something the
   * blob route refuses), and the first class is kept, except that a shared fetch proves the
   * manifest public. Serving never depends on it.
   */
  async put(digest: string, data: Buffer, mediaType: string, authClass: AuthClass): Promise<boolean> {
    const existing = await this.#info(digest);
    if (existing) {
      if (kindOf(existing.meta) !== 'manifest') return false;
      const previous = fetchedByOf(existing.meta);
      if (previous === authClass || isSharedClass(previous) || !isSharedClass(authClass)) return false;
    }
    if (data.length > MAX_MANIFEST_BYTES || digestOf(data, digest) !== digest) return false;
    try {
      await this.#backend.putBuffer(digest, data, manifestMeta(mediaType, authClass));
      return true;
    } catch (error) {
      debug('cannot store manifest %s: %O', digest, error);
      return false;
    }
  }
}
