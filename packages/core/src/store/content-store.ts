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
  /**
   * Cross-process single-flight (optional): stores shared by several processes decide who
   * fetches a missing entry. `lead`: this process fetches it, writing through the lease's
   * writer so that the others can follow; `follow`: another process is fetching it (or has
   * committed it) and its bytes are readable as they are written. Stores without it keep
   * single-flight within one process only. See docs/blob-engine.md, "Across processes".
   */
  claim?(digest: string, context?: ClaimContext): Promise<FillClaim>;
  close(): Promise<void>;
}

/** Who a claimed fill is for; `meta` (kind, auth class) is what followers check access by. */
export interface ClaimContext extends WriteContext {
  readonly meta?: ContentMeta;
}

/** What `claim` decided. */
export type FillClaim =
  | { readonly kind: 'lead'; readonly lease: FillLease }
  | { readonly kind: 'follow'; readonly remote: RemoteFill };

/**
 * The right to fetch one entry, held until `release()` (the store keeps it alive meanwhile).
 * A lease taken over from a leader that died mid-fill starts at `resumeFrom`: its writer
 * already holds (and has hashed) the bytes the dead leader wrote.
 */
export interface FillLease {
  readonly resumeFrom: number;
  /** The writer of this fill: its bytes are what followers in other processes read. Once. */
  createWriter(context?: WriteContext): Promise<ContentWriter>;
  /** Tells followers the fill is streaming, with the size upstream announced (if any). */
  streaming(size: number | undefined): Promise<void>;
  /** Ends the lease (after commit, abort or a declined answer). Idempotent. */
  release(): Promise<void>;
}

/** Another process's fill as a follower sees it. The follower hashes what it reads itself. */
export type RemoteState =
  /** The leader has not got the blob from upstream yet. */
  | { readonly kind: 'connecting' }
  /** Bytes are being written; `size` as announced by upstream, `meta` the leader's. */
  | { readonly kind: 'streaming'; readonly size: number | undefined; readonly meta?: ContentMeta }
  /**
   * The fill ended: committed (every byte readable; `size` is the entry's), or not (declined,
   * failed, aborted: what was written stays readable, it may still be complete).
   */
  | {
      readonly kind: 'ended';
      readonly committed: boolean;
      readonly size?: number;
      readonly meta?: ContentMeta;
    }
  /** The leader stopped keeping its lease alive: `takeOver()` may continue the fill. */
  | { readonly kind: 'stale' };

export interface RemoteFill {
  /** The fill's state now (reads the lease; call it at most every few hundred ms). */
  poll(): Promise<RemoteState>;
  /** Bytes `[position, ...)` written so far (empty when none yet). */
  readonly read: ReadAt;
  /** Leads the fill of a stale leader; undefined when another process won it. */
  takeOver(): Promise<FillLease | undefined>;
  /** Stops following (closes files). Idempotent. */
  close(): Promise<void>;
}
