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
 *
 * Any number of processes may share the directory (docs/store.md): a miss in the table is
 * looked up on disk (another process's commit is a hit here), the tables converge through the
 * per-process access journals (store/peer-sync.ts), and one evictor at a time, chosen by a lease
 * file (store/evictor-lease.ts), holds the directory to the cap and the inactive time.
 */
import { createHash, randomUUID } from 'node:crypto';
import { type FileHandle, open } from 'node:fs/promises';
import { join } from 'node:path';
import cacache from 'cacache';
import { DrpError } from '../api/errors.js';
import { writeBaseJournal } from './access-journal.js';
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
  ContentInfo,
  ContentStore,
  ContentWriter,
  FillClaim,
  ScrubResult,
  WriteContext,
} from './content-store.js';
import { blobDigest, blobKey } from './digest.js';
import { readDiskEntry } from './disk-entry.js';
import type { Entry, EntryTable } from './entry-table.js';
import { EvictorLease, processId } from './evictor-lease.js';
import { FillClaims } from './fill-claims.js';
import { LeaseDir } from './fill-lease.js';
import { sameMeta } from './fs-helpers.js';
import { PeerSync } from './peer-sync.js';
import { RemovalNotesReader } from './removal-notes.js';
import { scrubEntries } from './scrub.js';
import { commitSpoolFile, eventContext, writeSpoolFile } from './spool-commit.js';
import { SPOOL_GRACE_MS, SpoolHeartbeat } from './spool-gc.js';
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
export const EVICTOR_LEASE_FILE = 'drp-evictor.lease';

interface Parts {
  readonly table: EntryTable;
  readonly removalNotes: RemovalNotesReader;
  readonly lease: EvictorLease;
  readonly peers: PeerSync;
}

export class BlobStore implements ContentStore {
  readonly dir: string;
  /** This process's id in the directory (its journal file, its lease). */
  readonly id: string;
  readonly #options: BlobStoreOptions;
  readonly #now: () => number;
  readonly #table: EntryTable;
  readonly #removalNotes: RemovalNotesReader;
  readonly #lease: EvictorLease;
  readonly #peers: PeerSync;
  readonly #spoolBeat = new SpoolHeartbeat();
  /** Disk look-ups in flight, one per digest. */
  readonly #discovering = new Map<string, Promise<Entry | undefined>>();
  #sweepTimer: NodeJS.Timeout | undefined;
  #removalTimer: NodeJS.Timeout | undefined;
  #scrubbing: Promise<ScrubResult> | undefined;
  readonly #claims: FillClaims;

  private constructor(options: BlobStoreOptions, id: string, parts: Parts) {
    this.dir = options.dir;
    this.id = id;
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#table = parts.table;
    this.#removalNotes = parts.removalNotes;
    this.#lease = parts.lease;
    this.#peers = parts.peers;
    this.#claims = new FillClaims({
      dir: options.dir,
      spoolDir: this.spoolDir,
      leases: new LeaseDir(join(options.dir, LEASE_DIR), options.leaseTiming),
      writerAt: (digest, path, context) => this.#writerAt(digest, path, context),
    });
  }

  /**
   * Opens (creating) the store: loads the index and every process's access order, collects
   * dead processes' leftovers (never a live one's), and tries to become the directory's evictor.
   */
  static async open(options: BlobStoreOptions): Promise<BlobStore> {
    const id = processId();
    const removalNotes = new RemovalNotesReader(options.dir);
    const graceMs = options.graceMs ?? SPOOL_GRACE_MS;
    let store: BlobStore | undefined;
    const lease = new EvictorLease(
      {
        path: join(options.dir, EVICTOR_LEASE_FILE),
        maxBytes: options.maxSizeBytes,
        ...(options.leaseStaleMs === undefined ? {} : { staleMs: options.leaseStaleMs }),
        onChange: (held) => {
          // A takeover: the previous evictor may have died between a commit and its journal line.
          if (held && store) void store.#becameEvictor(true).catch(() => undefined);
        },
      },
      id,
    );
    const guardMs = options.guardMs ?? 10_000;
    const spoolDir = join(options.dir, SPOOL_DIR);
    const { table, tails } = await loadEntryTable({
      dir: options.dir,
      maxSizeBytes: options.maxSizeBytes,
      now: options.now ?? Date.now,
      events: options.events,
      otherBytes: options.otherBytes,
      evictor: () => lease.held,
      guardMs,
      spoolDir,
      journalFlushMs: options.journalFlushMs ?? 1000,
      removalNotes,
      id,
      spoolGraceMs: graceMs,
      orphanGraceMs: graceMs,
    });
    const peers = new PeerSync({
      dir: options.dir,
      spoolDir,
      id,
      table,
      lease,
      tails,
      discover: (digest, at) => (store ? store.#discover(digest, at) : Promise.resolve(undefined)),
      pollMs: options.peerPollMs ?? 1000,
      guardMs,
      graceMs,
      journalDeadMs: options.journalDeadMs ?? 10 * 60_000,
      housekeepingMs: options.housekeepingMs ?? 60_000,
      rescanMs: options.rescanMs ?? 10 * 60_000,
    });
    store = new BlobStore(options, id, { table, removalNotes, lease, peers });
    try {
      await lease.start();
      if (lease.held) await store.#becameEvictor();
    } catch (error) {
      // No heartbeating lease (nor timers) may outlive a store that failed to open.
      await store.close().catch(() => undefined);
      throw error;
    }
    store.#startTimers();
    return store;
  }

  /** True while this process is the directory's evictor (holds the evictor lease). */
  get evictor(): boolean {
    return this.#lease.held;
  }

  /** The evictor's chores at once: fold dead journals, expire, enforce the cap. */
  async #becameEvictor(takeover = false): Promise<void> {
    if (takeover) await this.#peers.rescan();
    await this.#peers.foldDeadJournals();
    await this.sweepInactive();
    this.#table.enforceCap();
  }

  /** Applies what other processes journaled since the last poll (runs by itself every second). */
  syncPeers(): Promise<void> {
    return this.#peers.poll();
  }

  /** An entry another process committed, found on disk and adopted; undefined when absent. */
  async #discover(digest: string, at = 0): Promise<Entry | undefined> {
    const known = this.#table.get(digest);
    if (known) return known;
    // Being removed here: whatever is still on disk is on its way out.
    if (this.#table.removing(digest) || this.#table.closed) return undefined;
    let pending = this.#discovering.get(digest);
    if (!pending) {
      pending = this.#adopt(digest, at).finally(() => this.#discovering.delete(digest));
      this.#discovering.set(digest, pending);
    }
    return pending;
  }

  async #adopt(digest: string, at: number): Promise<Entry | undefined> {
    let d: ReturnType<typeof blobDigest>;
    try {
      d = blobDigest(digest);
    } catch {
      return undefined;
    }
    const found = await readDiskEntry(this.dir, d);
    if (!found || this.#table.closed || this.#table.removing(digest)) return undefined;
    return this.#table.adopt(d, found.size, found.meta, Math.max(at, found.time));
  }

  /**
   * Size and metadata of an entry on disk, whichever process committed it (`peek` knows only
   * what this process has seen so far). Adopts it without marking it used.
   */
  async discover(digest: string): Promise<ContentInfo | undefined> {
    const entry = await this.#discover(digest);
    return entry ? { size: entry.size, meta: entry.meta } : undefined;
  }

  get spoolDir(): string {
    return join(this.dir, SPOOL_DIR);
  }

  /** Finds a blob and marks it used. Prefer `open()` to serve it: an open blob is pinned. */
  async lookup(digest: string): Promise<StoredBlob | undefined> {
    const entry = await this.#discover(digest);
    if (!entry) return undefined;
    this.#table.touch(entry);
    return describeEntry(this.dir, entry);
  }

  /**
   * Size and metadata of a stored entry, without opening it or changing the access order. No
   * I/O: another process's commit shows here once this process has seen it (a journal poll, or
   * an `open`/`readBuffer`/`discover` of the digest).
   */
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
    const entry = await this.#discover(digest);
    return entry ? openEntry(this.dir, this.#table, entry) : undefined;
  }

  /** Stores a small blob (a manifest, a config) after checking its digest. */
  async putBuffer(digest: string, data: Buffer, meta?: BlobMeta): Promise<void> {
    const d = blobDigest(digest);
    const actual = createHash(d.algorithm).update(data).digest('hex');
    if (actual !== d.hex) {
      throw new DrpError('DRP_DIGEST_MISMATCH', `content does not match ${digest}`);
    }
    const existing = await this.#table.present(await this.#discover(digest));
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
    const entry = await this.#discover(digest);
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
    // Its mtime stays fresh while open: other processes' spool GC leaves it alone.
    this.#spoolBeat.track(file);
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

  /**
   * The directory's view: entries and bytes of every process's commits this process has seen
   * (converged within a poll), the cap that applies (the evictor's); stored, evicted and pinned
   * count this process's own work.
   */
  stats(): BlobStoreStats {
    const { entries, bytes, stored, evicted, pinned } = this.#table.stats();
    const maxBytes = this.#lease.held
      ? this.#options.maxSizeBytes
      : (this.#lease.holder?.maxBytes ?? this.#options.maxSizeBytes);
    return { entries, bytes, maxBytes, stored, evicted, pinned };
  }

  /** Resolves when every removal started so far has finished (for tests and shutdown). */
  settled(): Promise<void> {
    return this.#table.settled();
  }

  /**
   * Waits for pending removals and writes the access journal. The evictor folds its own
   * journal into the base snapshot and gives the lease up for another process to take.
   */
  async close(): Promise<void> {
    if (this.#table.closed) return;
    const closing = this.#table.close();
    if (this.#sweepTimer) clearInterval(this.#sweepTimer);
    if (this.#removalTimer) clearInterval(this.#removalTimer);
    this.#spoolBeat.stop();
    await this.#peers.stop();
    await closing;
    await this.#scrubbing?.catch(() => undefined);
    if (this.#lease.held) {
      await this.#table.journal.flush();
      await writeBaseJournal(this.dir, this.#table.atimes());
      await this.#table.journal.discard();
    } else {
      await this.#table.closeJournal();
    }
    await this.#lease.close();
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
    this.#peers.start();
  }
}
