/**
 * The store contract: where verified content lives, addressed by digest. The blob engine and
 * the manifest handlers use a store only through this interface; `BlobStore` (cacache layout on
 * disk, store/blob-store.ts) is the default, and any other implementation that passes the
 * conformance suite (`@drp/core/testing`) can replace it.
 *
 * The store owns the whole commit: a writer hashes what it is given, and nothing becomes
 * visible unless all of it was written and hashes to the digest. Readers never see a partial
 * or wrong entry.
 */

/** Metadata kept with an entry (its kind, the auth class that fetched it, a media type). */
export type ContentMeta = Record<string, string>;

/** What `peek` knows about an entry without any I/O. */
export interface ContentInfo {
  readonly size: number;
  readonly meta: ContentMeta | undefined;
}

/** Fills `into` with bytes from `position` and returns the filled part; empty at the end. */
export type ReadAt = (into: Buffer, position: number) => Promise<Buffer>;

/**
 * An open entry, pinned until `release()`: it cannot be evicted while open, and a `delete`
 * meanwhile does not stop it from reading the bytes it opened.
 */
export interface ContentHandle extends ContentInfo {
  readonly digest: string;
  readonly read: ReadAt;
  /** Unpins and frees the handle. Idempotent. */
  release(): Promise<void>;
}

/** Who a write is for, reported with the store's events (e.g. `store-skipped`). */
export interface WriteContext {
  readonly registry?: string;
  readonly name?: string;
  /** Size announced by the source, when known. */
  readonly size?: number;
}

/**
 * One entry being written. `write` calls are sequential (the caller awaits each). Bytes already
 * written stay readable through `read` until `close()`, also after `commit` or `abort`: the
 * blob engine serves followers of a fill from them.
 */
export interface ContentWriter {
  readonly digest: string;
  /** Bytes accepted so far. */
  readonly written: number;
  /** Appends bytes. Rejects when the store cannot take them (disk full): nothing will be stored. */
  write(chunks: readonly Buffer[]): Promise<void>;
  /** Bytes `[position, written)`, into `into`. */
  readonly read: ReadAt;
  /**
   * Ends writing and checks the bytes against the digest: rejects with `DRP_DIGEST_MISMATCH`
   * (nothing will be stored) when they do not match. Idempotent.
   */
  verify(): Promise<void>;
  /**
   * Verifies (if not done), then makes the entry durable and visible with `meta`. Resolves
   * false when the store declined it (bigger than the store, disk refused); rejects only on a
   * digest mismatch. Content already stored under the digest counts as stored.
   */
  commit(meta?: ContentMeta): Promise<boolean>;
  /** Stores nothing. Idempotent; a no-op after `commit`. */
  abort(): Promise<void>;
  /** Frees the writer (aborting it unless committed); `read` stops working. Idempotent. */
  close(): Promise<void>;
}

export interface ContentStoreStats {
  readonly entries: number;
  readonly bytes: number;
  readonly maxBytes: number;
  /** Entries committed / removed since the store was opened. */
  readonly stored: number;
  readonly evicted: number;
  /** Entries open right now. */
  readonly pinned: number;
}

/** What one pass of a store's self-check found. */
export interface ScrubResult {
  readonly checked: number;
  readonly corrupt: string[];
  readonly missing: string[];
}

export interface ContentStore {
  /** Size and metadata of an entry: no I/O, no change to its recency. */
  peek(digest: string): ContentInfo | undefined;
  /** Opens an entry for reading, pinned until released; undefined on a miss. */
  open(digest: string): Promise<ContentHandle | undefined>;
  /** Starts writing `digest`; several writers of one digest may run at once. */
  createWriter(digest: string, context?: WriteContext): Promise<ContentWriter>;
  /** A small entry read whole and re-checked against its digest; undefined on a miss. */
  readBuffer(digest: string): Promise<{ data: Buffer; meta: ContentMeta | undefined } | undefined>;
  /** Stores a small entry; rejects with `DRP_DIGEST_MISMATCH` when `data` does not match. */
  putBuffer(digest: string, data: Buffer, meta?: ContentMeta): Promise<void>;
  /** Removes an entry; open handles keep reading. False when it was not there. */
  delete(digest: string): Promise<boolean>;
  stats(): ContentStoreStats;
  /** Re-checks stored entries against their digests (optional: not every store can). */
  scrub?(): Promise<ScrubResult>;
  close(): Promise<void>;
}
