/** The blob store's public types, re-exported by store/blob-store.ts. */
import type { FileHandle } from 'node:fs/promises';
import type { CacheEvents } from '../events.js';
import type { ContentHandle, ContentMeta, ContentStoreStats } from './content-store.js';
import type { LeaseTiming } from './fill-lease.js';

/** Blob metadata kept in the index, e.g. a manifest's media type. */
export type BlobMeta = ContentMeta;

export interface StoredBlob {
  readonly digest: string;
  readonly size: number;
  /** The content file. Read it directly (fs.createReadStream), never through cacache.get. */
  readonly path: string;
  readonly meta: BlobMeta | undefined;
}

/** An open, pinned blob: it cannot be evicted until `release()`. */
export interface BlobHandle extends StoredBlob, ContentHandle {
  readonly file: FileHandle;
  /** Closes the file and unpins. Idempotent. */
  release(): Promise<void>;
}

export interface BlobStoreOptions {
  readonly dir: string;
  /** Cap on the sum of stored blob sizes; least recently used blobs go first. */
  readonly maxSizeBytes: number;
  /** Blobs not read for this long are removed. 0 disables expiry. */
  readonly inactiveMs: number;
  readonly now?: () => number;
  readonly events?: CacheEvents;
  /** How often inactive blobs are swept. Default: inactive / 20, between 1 s and 10 min. */
  readonly sweepIntervalMs?: number;
  /** Journal flush interval. Default 1000 ms. */
  readonly journalFlushMs?: number;
  /** Bytes kept beside the blobs (the tag index) that count in the cap too. */
  readonly otherBytes?: () => number;
  /** How often removals by other processes (the cache tools) are picked up. Default 2000 ms. */
  readonly removalPollMs?: number;
  /** Cross-process fill leases: heartbeat and staleness. Default 5 s / 15 s (store/fill-lease.ts). */
  readonly leaseTiming?: LeaseTiming;
  /** How often the other processes' journals are read. Default 1000 ms. */
  readonly peerPollMs?: number;
  /** An evictor lease unchanged this long (own clock) is taken over. Default 30 s. */
  readonly leaseStaleMs?: number;
  /** Entries another process used this recently are never evicted. Default 10 s. */
  readonly guardMs?: number;
  /** Spool files, unindexed content and journal temp files younger than this are never garbage. Default 10 min. */
  readonly graceMs?: number;
  /** A journal not written for this long is folded into the base by the evictor. Default 10 min. */
  readonly journalDeadMs?: number;
  /** Spool GC and the evictor's chores. Default 60 s. */
  readonly housekeepingMs?: number;
  /** The evictor reads the whole index this often (entries whose journal line was lost). Default 10 min. */
  readonly rescanMs?: number;
}

export type BlobStoreStats = ContentStoreStats;
