/**
 * The content-addressed store: every blob (layers, configs, manifests by digest) once, keyed by
 * its digest, shared by all registries and repositories. Layout and index are cacache's
 * (`content-v2/sha256/ab/cd/...`, `index-v5/`), so `cacache.get` reads it too; on top of it
 * this class keeps what cacache lacks: an in-memory entry table in least-recently-used order
 * (store/entry-table.ts), persisted through an access journal, a size cap and inactive expiry,
 * and pins so that a blob being served is never removed.
 *
 * It implements the ContentStore contract (store/content-store.ts). Writes are always verified:
 * `putBuffer` hashes before writing; streamed blobs go through a writer (store/spool-writer.ts)
 * that hashes while spooling, then are moved into place with `commitSpool` (rename = atomic;
 * index line appended after the content exists, so a crash leaves at worst an unreferenced
 * content file, which `open` sweeps away: store/blob-store-load.ts). This store alone reports
 * `store-skipped`.
 */
import { createHash, randomUUID } from 'node:crypto';
import { type FileHandle, open } from 'node:fs/promises';
import { join } from 'node:path';
import cacache from 'cacache';
import { DrpError } from '../api/errors.js';
import { describeEntry, openEntry, readEntry } from './blob-read.js';
import { loadEntryTable } from './blob-store-load.js';
import type {
  BlobHandle,
  BlobMeta,
  BlobStoreOptions,
  BlobStoreStats,
  StoredBlob,
} from './blob-store-types.js';
import type {
  ClaimContext,
  ContentStore,
  ContentWriter,
  FillClaim,
  ScrubResult,
  WriteContext,
} from './content-store.js';
import { blobDigest, blobKey } from './digest.js';
import type { EntryTable } from './entry-table.js';
import { FillClaims } from './fill-claims.js';
import { LeaseDir } from './fill-lease.js';
import { sameMeta } from './fs-helpers.js';
import { RemovalNotesReader } from './removal-notes.js';
import { scrubEntries } from './scrub.js';
import { commitSpoolFile, eventContext, writeSpoolFile } from './spool-commit.js';
import { SpoolWriter } from './spool-writer.js';

export { JOURNAL_FILE } from './blob-store-load.js';
export type {
  BlobHandle,
  BlobMeta,
  BlobStoreOptions,
  BlobStoreStats,
  StoredBlob,
} from './blob-store-types.js';
export type { ScrubResult } from './content-store.js';
export { hashFile, removeIndexEntry } from './fs-helpers.js';

const SPOOL_DIR = 'drp-spool';
const LEASE_DIR = 'drp-leases';

export class BlobStore implements ContentStore {
  readonly dir: string;
  readonly #options: BlobStoreOptions;
  readonly #now: () => number;
  readonly #table: EntryTable;
  readonly #removalNotes: RemovalNotesReader;
  #sweepTimer: NodeJS.Timeout | undefined;
  #removalTimer: NodeJS.Timeout | undefined;
  #scrubbing: Promise<ScrubResult> | undefined;
  readonly #claims: FillClaims;

  private constructor(options: BlobStoreOptions, table: EntryTable, removalNotes: RemovalNotesReader) {
    this.dir = options.dir;
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#table = table;
    this.#removalNotes = removalNotes;
    this.#claims = new FillClaims({
      dir: options.dir,
      spoolDir: this.spoolDir,
      leases: new LeaseDir(join(options.dir, LEASE_DIR), options.leaseTiming),
      writerAt: (digest, path, context) => this.#writerAt(digest, path, context),
    });
  }

  /** Opens (creating) the store: loads the index and access order, sweeps crash leftovers. */
  static async open(options: BlobStoreOptions): Promise<BlobStore> {
    const removalNotes = new RemovalNotesReader(options.dir);
    const table = await loadEntryTable({
      dir: options.dir,
      maxSizeBytes: options.maxSizeBytes,
      now: options.now ?? Date.now,
      events: options.events,
      otherBytes: options.otherBytes,
      spoolDir: join(options.dir, SPOOL_DIR),
      journalFlushMs: options.journalFlushMs ?? 1000,
      removalNotes,
    });
    const store = new BlobStore(options, table, removalNotes);
    await store.sweepInactive();
    table.enforceCap();
    store.#startTimers();
    return store;
  }

  get spoolDir(): string {
    return join(this.dir, SPOOL_DIR);
  }

  /** Finds a blob and marks it used. Prefer `open()` to serve it: an open blob is pinned. */
  async lookup(digest: string): Promise<StoredBlob | undefined> {
    const entry = this.#table.get(digest);
    if (!entry) return undefined;
    this.#table.touch(entry);
    return describeEntry(this.dir, entry);
  }

  /** Size and metadata of a stored entry, without opening it or changing the access order. */
  peek(digest: string): { readonly size: number; readonly meta: BlobMeta | undefined } | undefined {
    const entry = this.#table.get(digest);
    return entry ? { size: entry.size, meta: entry.meta } : undefined;
  }

  /** True when the blob is stored. Does not change the access order. */
  has(digest: string): boolean {
    return this.#table.has(digest);
  }

  /** Opens a stored blob for reading, pinned until `release()`. */
  async open(digest: string): Promise<BlobHandle | undefined> {
    const entry = this.#table.get(digest);
    return entry ? openEntry(this.dir, this.#table, entry) : undefined;
  }

  /** Stores a small blob (a manifest, a config) after checking its digest. */
  async putBuffer(digest: string, data: Buffer, meta?: BlobMeta): Promise<void> {
    const d = blobDigest(digest);
    const actual = createHash(d.algorithm).update(data).digest('hex');
    if (actual !== d.hex) {
      throw new DrpError('DRP_DIGEST_MISMATCH', `content does not match ${digest}`);
    }
    const existing = await this.#table.present(this.#table.get(digest));
    if (existing && sameMeta(existing.meta, meta)) {
      this.#table.touch(existing);
      return;
    }
    if (data.length > this.#options.maxSizeBytes) return;
    if (existing) {
      // Same bytes, new metadata (a manifest's class widened to shared): a new index line.
      await cacache.index.insert(this.dir, blobKey(digest), d.integrity, {
        size: data.length,
        ...(meta ? { metadata: meta } : {}),
      });
      existing.meta = meta;
      this.#table.touch(existing);
      return;
    }
    // Through the spool like a streamed blob: one commit path, files 0600.
    const spool = this.spoolPath();
    await writeSpoolFile(spool, digest, data);
    await this.commitSpool(digest, spool, data.length, meta);
  }

  /** Reads a small blob whole, re-checking its digest (a corrupted file reads as a miss). */
  async readBuffer(digest: string): Promise<{ data: Buffer; meta: BlobMeta | undefined } | undefined> {
    const entry = this.#table.get(digest);
    return entry ? readEntry(this.dir, this.#table, entry) : undefined;
  }

  /**
   * A writer spooling `digest`. Rejects (after reporting `store-skipped`) when the spool cannot
   * be created, e.g. on a full disk.
   */
  createWriter(digest: string, context: WriteContext = {}): Promise<ContentWriter> {
    return this.#writerAt(digest, this.spoolPath(), context);
  }

  /** Cross-process single-flight on this directory (store/fill-claims.ts). */
  claim(digest: string, context?: ClaimContext): Promise<FillClaim> {
    return this.#claims.claim(digest, context);
  }

  async #writerAt(digest: string, path: string, context: WriteContext): Promise<ContentWriter> {
    const d = blobDigest(digest);
    const skipped = (forDigest: string, reason: string) =>
      this.#options.events?.publish('store-skipped', { ...eventContext(context), digest: forDigest, reason });
    let file: FileHandle;
    try {
      file = await open(path, 'w+', 0o600);
    } catch (error) {
      skipped(digest, (error as NodeJS.ErrnoException).code ?? 'spool open failed');
      throw new DrpError('DRP_CACHE_IO', `cannot spool ${digest}`, { cause: error });
    }
    const commitSpool = (forDigest: string, spool: string, size: number, meta?: BlobMeta) =>
      this.commitSpool(forDigest, spool, size, meta, context);
    return new SpoolWriter({ commitSpool, skipped }, d, path, file);
  }

  /** A fresh path in the spool directory (same file system as the content, so rename is atomic). */
  spoolPath(): string {
    return join(this.spoolDir, `${randomUUID()}.part`);
  }

  /**
   * Moves a fully written and verified spool file into the store. The caller has checked the
   * digest and synced the file. Returns false (and removes the spool file) when the blob is
   * not stored: larger than the whole cache, or the disk refused.
   */
  commitSpool(
    digest: string,
    spoolPath: string,
    size: number,
    meta?: BlobMeta,
    context: WriteContext = {},
  ): Promise<boolean> {
    const { maxSizeBytes, events } = this.#options;
    const target = { dir: this.dir, table: this.#table, maxSizeBytes, events };
    return commitSpoolFile(target, { digest, path: spoolPath, size, meta, context });
  }

  /** Removes a blob now. Readers that have it open keep reading their open file. */
  async delete(digest: string): Promise<boolean> {
    const entry = this.#table.get(digest);
    if (!entry) return false;
    await this.#table.remove(entry, 'manual');
    return true;
  }

  /** Removes blobs not read for `inactiveMs`; returns how many. Runs periodically by itself. */
  async sweepInactive(): Promise<number> {
    const inactive = this.#options.inactiveMs;
    if (inactive <= 0) return 0;
    return this.#table.sweepBefore(this.#now() - inactive);
  }

  /**
   * Re-hashes every stored entry, one file at a time: corrupt ones are removed (evict reason
   * `corrupt`), ones whose file vanished are forgotten. Entries stored while it runs are left
   * for the next pass. One pass at a time; a second call joins the running one.
   */
  scrub(): Promise<ScrubResult> {
    this.#scrubbing ??= scrubEntries(this.dir, this.#table).finally(() => {
      this.#scrubbing = undefined;
    });
    return this.#scrubbing;
  }

  /** Forgets entries another process removed (cache tools), when their file is really gone. */
  async applyRemovalNotes(): Promise<number> {
    let forgotten = 0;
    for (const digest of await this.#removalNotes.poll()) {
      const entry = this.#table.get(digest);
      if (entry && !(await this.#table.present(entry))) forgotten += 1;
    }
    return forgotten;
  }

  /** Digests from least to most recently used. */
  accessOrder(): string[] {
    return this.#table.accessOrder();
  }

  stats(): BlobStoreStats {
    const { entries, bytes, stored, evicted, pinned } = this.#table.stats();
    return { entries, bytes, maxBytes: this.#options.maxSizeBytes, stored, evicted, pinned };
  }

  /** Resolves when every removal started so far has finished (for tests and shutdown). */
  settled(): Promise<void> {
    return this.#table.settled();
  }

  /** Waits for pending removals and writes the access journal. */
  async close(): Promise<void> {
    if (this.#table.closed) return;
    const closing = this.#table.close();
    if (this.#sweepTimer) clearInterval(this.#sweepTimer);
    if (this.#removalTimer) clearInterval(this.#removalTimer);
    await closing;
    await this.#scrubbing?.catch(() => undefined);
    await this.#table.closeJournal();
  }

  #startTimers(): void {
    const inactive = this.#options.inactiveMs;
    if (inactive > 0) {
      const every = this.#options.sweepIntervalMs ?? Math.min(Math.max(inactive / 20, 1000), 600_000);
      this.#sweepTimer = setInterval(() => void this.sweepInactive().catch(() => undefined), every);
      this.#sweepTimer.unref();
    }
    this.#removalTimer = setInterval(
      () => void this.applyRemovalNotes().catch(() => undefined),
      this.#options.removalPollMs ?? 2000,
    );
    this.#removalTimer.unref();
  }
}
