/**
 * The content-addressed store: every blob (layers, configs, manifests by digest) once, keyed by
 * its digest, shared by all registries and repositories. Layout and index are cacache's
 * (`content-v2/sha256/ab/cd/...`, `index-v5/`), so `cacache.get` reads it too; on top of it
 * this class keeps what cacache lacks: an in-memory entry table in least-recently-used order,
 * persisted through an access journal, a size cap and inactive expiry, and pins so that a blob
 * being served is never removed.
 *
 * It implements the ContentStore contract (store/content-store.ts). Writes are always verified:
 * `putBuffer` hashes before writing; streamed blobs go through a writer (store/spool-writer.ts)
 * that hashes while spooling, then are moved into place with `commitSpool` (rename = atomic;
 * index line appended after the content exists, so a crash leaves at worst an unreferenced
 * content file, which `open` sweeps away). This store alone reports `store-skipped`.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, read } from 'node:fs';
import {
  chmod,
  type FileHandle,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  unlink,
} from 'node:fs/promises';
import { dirname, join } from 'node:path';
import cacache from 'cacache';
import createDebug from 'debug';
import { DrpError } from '../api/errors.js';
import type { CacheEvents } from '../events.js';
import { AccessJournal } from './access-journal.js';
import type {
  ContentHandle,
  ContentMeta,
  ContentStore,
  ContentStoreStats,
  ContentWriter,
  ScrubResult,
  WriteContext,
} from './content-store.js';
import { type BlobDigest, blobDigest, blobKey, contentPath } from './digest.js';
import { RemovalNotesReader } from './removal-notes.js';
import { SpoolWriter } from './spool-writer.js';

export type { ScrubResult } from './content-store.js';

const debug = createDebug('drp:store');

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
}

export type BlobStoreStats = ContentStoreStats;

interface Entry {
  readonly d: BlobDigest;
  readonly size: number;
  atime: number;
  meta: BlobMeta | undefined;
  pins: number;
}

type EvictReason = 'size' | 'inactive' | 'manual' | 'corrupt';

const SPOOL_DIR = 'drp-spool';
export const JOURNAL_FILE = 'drp-access.journal';

export class BlobStore implements ContentStore {
  readonly dir: string;
  readonly #options: BlobStoreOptions;
  readonly #now: () => number;
  /** Insertion order = access order, oldest first (delete + set on touch). */
  readonly #entries = new Map<string, Entry>();
  /** Removals in progress per digest; a commit of the same digest waits for them. */
  readonly #removing = new Map<string, Promise<void>>();
  #journal: AccessJournal | undefined;
  #bytes = 0;
  #stored = 0;
  #evicted = 0;
  #sweepTimer: NodeJS.Timeout | undefined;
  #removalTimer: NodeJS.Timeout | undefined;
  readonly #removalNotes: RemovalNotesReader;
  #scrubbing: Promise<ScrubResult> | undefined;
  #closed = false;

  private constructor(options: BlobStoreOptions) {
    this.dir = options.dir;
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#removalNotes = new RemovalNotesReader(options.dir);
  }

  /** Opens (creating) the store: loads the index and access order, sweeps crash leftovers. */
  static async open(options: BlobStoreOptions): Promise<BlobStore> {
    const store = new BlobStore(options);
    await store.#load();
    return store;
  }

  get spoolDir(): string {
    return join(this.dir, SPOOL_DIR);
  }

  /** Finds a blob and marks it used. Prefer `open()` to serve it: an open blob is pinned. */
  async lookup(digest: string): Promise<StoredBlob | undefined> {
    const entry = this.#entries.get(digest);
    if (!entry) return undefined;
    this.#touch(entry);
    return this.#describe(entry);
  }

  /** Size and metadata of a stored entry, without opening it or changing the access order. */
  peek(digest: string): { readonly size: number; readonly meta: BlobMeta | undefined } | undefined {
    const entry = this.#entries.get(digest);
    return entry ? { size: entry.size, meta: entry.meta } : undefined;
  }

  /** True when the blob is stored. Does not change the access order. */
  has(digest: string): boolean {
    return this.#entries.has(digest);
  }

  /** Opens a stored blob for reading, pinned until `release()`. */
  async open(digest: string): Promise<BlobHandle | undefined> {
    const entry = this.#entries.get(digest);
    if (!entry) return undefined;
    entry.pins += 1;
    const path = contentPath(this.dir, entry.d);
    let file: FileHandle;
    try {
      file = await open(path, 'r');
    } catch (error) {
      entry.pins -= 1;
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        // Removed behind our back: forget it, the caller fetches it again.
        debug('content of %s is missing; dropping the entry', digest);
        void this.#remove(entry, 'manual');
        return undefined;
      }
      throw new DrpError('DRP_CACHE_IO', `cannot open cached blob ${digest}`, { cause: error });
    }
    this.#touch(entry);
    let released = false;
    return {
      ...this.#describe(entry),
      file,
      read: (into, position) => readAt(file.fd, into, position),
      release: async () => {
        if (released) return;
        released = true;
        entry.pins -= 1;
        await file.close().catch(() => undefined);
        if (entry.pins === 0) this.#enforceCap();
      },
    };
  }

  /** Stores a small blob (a manifest, a config) after checking its digest. */
  async putBuffer(digest: string, data: Buffer, meta?: BlobMeta): Promise<void> {
    const d = blobDigest(digest);
    const actual = createHash(d.algorithm).update(data).digest('hex');
    if (actual !== d.hex) {
      throw new DrpError('DRP_DIGEST_MISMATCH', `content does not match ${digest}`);
    }
    const existing = await this.#present(this.#entries.get(digest));
    if (existing && sameMeta(existing.meta, meta)) {
      this.#touch(existing);
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
      this.#touch(existing);
      return;
    }
    // Through the spool like a streamed blob: one commit path, files 0600.
    const spool = this.spoolPath();
    const file = await open(spool, 'w', 0o600);
    try {
      await file.writeFile(data);
      await file.datasync();
    } catch (error) {
      await file.close().catch(() => undefined);
      await unlink(spool).catch(() => undefined);
      throw new DrpError('DRP_CACHE_IO', `cannot store ${digest}`, { cause: error });
    }
    await file.close();
    await this.commitSpool(digest, spool, data.length, meta);
  }

  /** Reads a small blob whole, re-checking its digest (a corrupted file reads as a miss). */
  async readBuffer(digest: string): Promise<{ data: Buffer; meta: BlobMeta | undefined } | undefined> {
    const entry = this.#entries.get(digest);
    if (!entry) return undefined;
    entry.pins += 1;
    try {
      const data = await readFile(contentPath(this.dir, entry.d));
      if (createHash(entry.d.algorithm).update(data).digest('hex') !== entry.d.hex) {
        debug('content of %s is corrupt; removing it', digest);
        entry.pins -= 1;
        await this.delete(digest);
        return undefined;
      }
      entry.pins -= 1;
      this.#touch(entry);
      return { data, meta: entry.meta };
    } catch (error) {
      entry.pins -= 1;
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        void this.#remove(entry, 'manual');
        return undefined;
      }
      throw new DrpError('DRP_CACHE_IO', `cannot read cached blob ${digest}`, { cause: error });
    }
  }

  /**
   * A writer spooling `digest`. Rejects (after reporting `store-skipped`) when the spool cannot
   * be created, e.g. on a full disk.
   */
  async createWriter(digest: string, context: WriteContext = {}): Promise<ContentWriter> {
    const d = blobDigest(digest);
    const path = this.spoolPath();
    const skipped = (forDigest: string, reason: string) =>
      this.#options.events?.publish('store-skipped', { ...eventContext(context), digest: forDigest, reason });
    let file: FileHandle;
    try {
      file = await open(path, 'w+', 0o600);
    } catch (error) {
      skipped(digest, (error as NodeJS.ErrnoException).code ?? 'spool open failed');
      throw new DrpError('DRP_CACHE_IO', `cannot spool ${digest}`, { cause: error });
    }
    return new SpoolWriter(
      {
        commitSpool: (forDigest, spool, size, meta) =>
          this.commitSpool(forDigest, spool, size, meta, context),
        skipped,
      },
      d,
      path,
      file,
    );
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
  async commitSpool(
    digest: string,
    spoolPath: string,
    size: number,
    meta?: BlobMeta,
    context: WriteContext = {},
  ): Promise<boolean> {
    const d = blobDigest(digest);
    const started = performance.now();
    if (this.#closed) {
      await unlink(spoolPath).catch(() => undefined);
      return false;
    }
    if (size > this.#options.maxSizeBytes) {
      await unlink(spoolPath).catch(() => undefined);
      const about = { ...eventContext(context), digest, size };
      this.#options.events?.publish('store-skipped', { ...about, reason: 'larger than the cache' });
      return false;
    }
    const existing = await this.#present(this.#entries.get(digest));
    if (existing) {
      await unlink(spoolPath).catch(() => undefined);
      this.#touch(existing);
      return true;
    }
    await this.#removing.get(digest);
    const target = contentPath(this.dir, d);
    try {
      await mkdir(dirname(target), { recursive: true, mode: 0o700 });
      await rename(spoolPath, target);
      await cacache.index.insert(this.dir, blobKey(digest), d.integrity, {
        size,
        ...(meta ? { metadata: meta } : {}),
      });
    } catch (error) {
      debug('commit of %s failed: %s', digest, (error as Error).message);
      await unlink(spoolPath).catch(() => undefined);
      // The rename may have happened: a content file without an index line is garbage.
      if (!this.#entries.has(digest)) await unlink(target).catch(() => undefined);
      this.#options.events?.publish('store-skipped', {
        ...eventContext(context),
        digest,
        size,
        reason: (error as NodeJS.ErrnoException).code ?? 'commit failed',
      });
      return false;
    }
    this.#add(d, size, meta, performance.now() - started);
    return true;
  }

  /** Removes a blob now. Readers that have it open keep reading their open file. */
  async delete(digest: string): Promise<boolean> {
    const entry = this.#entries.get(digest);
    if (!entry) return false;
    await this.#remove(entry, 'manual');
    return true;
  }

  /** Removes blobs not read for `inactiveMs`; returns how many. Runs periodically by itself. */
  async sweepInactive(): Promise<number> {
    const inactive = this.#options.inactiveMs;
    if (inactive <= 0) return 0;
    const cutoff = this.#now() - inactive;
    const victims: Entry[] = [];
    for (const entry of this.#entries.values()) {
      // Access order is by atime, oldest first: stop at the first recent one.
      if (entry.atime > cutoff) break;
      if (entry.pins === 0) victims.push(entry);
    }
    await Promise.all(victims.map((entry) => this.#remove(entry, 'inactive')));
    return victims.length;
  }

  /**
   * Re-hashes every stored entry, one file at a time: corrupt ones are removed (evict reason
   * `corrupt`), ones whose file vanished are forgotten. Entries stored while it runs are left
   * for the next pass. One pass at a time; a second call joins the running one.
   */
  scrub(): Promise<ScrubResult> {
    this.#scrubbing ??= this.#scrub().finally(() => {
      this.#scrubbing = undefined;
    });
    return this.#scrubbing;
  }

  async #scrub(): Promise<ScrubResult> {
    const corrupt: string[] = [];
    const missing: string[] = [];
    let checked = 0;
    for (const entry of [...this.#entries.values()]) {
      if (this.#closed) break;
      if (this.#entries.get(entry.d.digest) !== entry) continue;
      const result = await hashFile(contentPath(this.dir, entry.d), entry.d.algorithm);
      checked += 1;
      if (result === undefined) {
        missing.push(entry.d.digest);
        await this.#remove(entry, 'manual');
      } else if (result.hex !== entry.d.hex || result.size !== entry.size) {
        debug('scrub: content of %s is corrupt; removing it', entry.d.digest);
        corrupt.push(entry.d.digest);
        await this.#remove(entry, 'corrupt');
      }
    }
    return { checked, corrupt, missing };
  }

  /** Forgets entries another process removed (cache tools), when their file is really gone. */
  async applyRemovalNotes(): Promise<number> {
    let forgotten = 0;
    for (const digest of await this.#removalNotes.poll()) {
      const entry = this.#entries.get(digest);
      if (entry && !(await this.#present(entry))) forgotten += 1;
    }
    return forgotten;
  }

  /** Digests from least to most recently used. */
  accessOrder(): string[] {
    return [...this.#entries.keys()];
  }

  stats(): BlobStoreStats {
    let pinned = 0;
    for (const entry of this.#entries.values()) if (entry.pins > 0) pinned += 1;
    return {
      entries: this.#entries.size,
      bytes: this.#bytes,
      maxBytes: this.#options.maxSizeBytes,
      stored: this.#stored,
      evicted: this.#evicted,
      pinned,
    };
  }

  /** Resolves when every removal started so far has finished (for tests and shutdown). */
  async settled(): Promise<void> {
    while (this.#removing.size > 0) await Promise.all(this.#removing.values());
  }

  /** Waits for pending removals and writes the access journal. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#sweepTimer) clearInterval(this.#sweepTimer);
    if (this.#removalTimer) clearInterval(this.#removalTimer);
    await Promise.all(this.#removing.values());
    await this.#scrubbing?.catch(() => undefined);
    await this.#journal?.close();
  }

  // --- internals -------------------------------------------------------------------------

  async #load(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    // Private whatever the volume came with: the index names digests and auth classes.
    await chmod(this.dir, 0o700).catch(() => undefined);
    // Spool files are never visible entries: whatever a crash left there is garbage.
    await rm(this.spoolDir, { recursive: true, force: true });
    // On a full disk even a directory may not fit: fills then pass through uncached.
    await mkdir(this.spoolDir, { recursive: true, mode: 0o700 }).catch((error: Error) =>
      debug('cannot create the spool directory: %s', error.message),
    );
    // The index read below already reflects every removal noted so far.
    await this.#removalNotes.reset();

    const { journal, atimes } = await AccessJournal.open(
      join(this.dir, JOURNAL_FILE),
      this.#options.journalFlushMs ?? 1000,
    );
    this.#journal = journal;

    const listed = await cacache.ls(this.dir);
    const referenced = new Set<string>();
    const found: Entry[] = [];
    for (const info of Object.values(listed)) {
      if (info.integrity) referenced.add(String(info.integrity));
      if (!info.key.startsWith('blob:')) continue;
      const digest = info.key.slice('blob:'.length);
      let d: BlobDigest;
      try {
        d = blobDigest(digest);
      } catch {
        continue;
      }
      if (String(info.integrity) !== d.integrity) continue;
      found.push({
        d,
        size: Number(info.size ?? 0),
        atime: atimes.get(digest) ?? Number(info.time ?? 0),
        meta: isMeta(info.metadata) ? info.metadata : undefined,
        pins: 0,
      });
    }
    found.sort((a, b) => a.atime - b.atime);
    for (const entry of found) {
      this.#entries.set(entry.d.digest, entry);
      this.#bytes += entry.size;
    }
    await this.#sweepOrphans(referenced);
    await journal.snapshot(this.#snapshotEntries());
    debug('opened %s: %d entries, %d bytes', this.dir, this.#entries.size, this.#bytes);

    await this.sweepInactive();
    this.#enforceCap();
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

  /** The entry when its content file exists; a vanished one is forgotten (accounting stays true). */
  async #present(entry: Entry | undefined): Promise<Entry | undefined> {
    if (!entry) return undefined;
    try {
      await stat(contentPath(this.dir, entry.d));
      return entry;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') return entry;
      debug('content of %s was removed by another process; forgetting it', entry.d.digest);
      // Its index line too (usually gone already); a commit of the digest waits for this.
      void this.#remove(entry, 'manual');
      return undefined;
    }
  }

  /** Deletes content files no index entry refers to (left by a crash mid-commit or mid-evict). */
  async #sweepOrphans(referenced: Set<string>): Promise<void> {
    const root = join(this.dir, 'content-v2');
    for (const algorithm of ['sha256', 'sha512']) {
      const base = join(root, algorithm);
      for (const a of await listDir(base)) {
        for (const b of await listDir(join(base, a))) {
          for (const rest of await listDir(join(base, a, b))) {
            const hex = `${a}${b}${rest}`;
            if (!/^[a-f0-9]+$/.test(hex)) continue;
            const integrity = `${algorithm}-${Buffer.from(hex, 'hex').toString('base64')}`;
            if (referenced.has(integrity)) continue;
            debug('removing orphaned content %s:%s', algorithm, hex);
            await unlink(join(base, a, b, rest)).catch(() => undefined);
          }
        }
      }
    }
  }

  *#snapshotEntries(): Iterable<readonly [string, number]> {
    for (const [digest, entry] of this.#entries) yield [digest, entry.atime] as const;
  }

  #describe(entry: Entry): StoredBlob {
    return {
      digest: entry.d.digest,
      size: entry.size,
      path: contentPath(this.dir, entry.d),
      meta: entry.meta,
    };
  }

  #touch(entry: Entry): void {
    const now = this.#now();
    entry.atime = Math.max(now, entry.atime);
    this.#entries.delete(entry.d.digest);
    this.#entries.set(entry.d.digest, entry);
    this.#journal?.touch(entry.d.digest, entry.atime);
    this.#maybeCompact();
  }

  #add(d: BlobDigest, size: number, meta: BlobMeta | undefined, ms: number): void {
    const previous = this.#entries.get(d.digest);
    if (previous) {
      previous.meta = meta;
      this.#touch(previous);
      return;
    }
    const entry: Entry = { d, size, atime: this.#now(), meta, pins: 0 };
    this.#entries.set(d.digest, entry);
    this.#bytes += size;
    this.#stored += 1;
    this.#journal?.touch(d.digest, entry.atime);
    this.#options.events?.publish('store', { kind: 'blob', digest: d.digest, size, ms: Math.round(ms) });
    this.#enforceCap();
  }

  /** Evicts least recently used, unpinned blobs until the total fits under the cap. */
  #enforceCap(): void {
    const max = this.#options.maxSizeBytes - (this.#options.otherBytes?.() ?? 0);
    if (this.#bytes <= max) return;
    for (const entry of [...this.#entries.values()]) {
      if (this.#bytes <= max) break;
      if (entry.pins > 0) continue;
      void this.#remove(entry, 'size');
    }
  }

  /** Forgets an entry in memory (synchronously, so accounting is immediate) and records it. */
  #drop(entry: Entry, reason: EvictReason): boolean {
    if (this.#entries.get(entry.d.digest) !== entry) return false;
    this.#entries.delete(entry.d.digest);
    this.#bytes -= entry.size;
    this.#evicted += 1;
    this.#journal?.remove(entry.d.digest);
    this.#options.events?.publish('evict', { digest: entry.d.digest, size: entry.size, reason });
    return true;
  }

  async #remove(entry: Entry, reason: EvictReason): Promise<void> {
    if (!this.#drop(entry, reason)) return;
    const digest = entry.d.digest;
    const previous = this.#removing.get(digest) ?? Promise.resolve();
    const removal = previous
      .then(async () => {
        // Index line first: a crash in between leaves an orphan file, never a dangling entry.
        await removeIndexEntry(this.dir, blobKey(digest));
        await unlink(contentPath(this.dir, entry.d)).catch((error: NodeJS.ErrnoException) => {
          if (error.code !== 'ENOENT') throw error;
        });
      })
      .catch((error: unknown) => debug('removing %s failed: %s', digest, (error as Error).message))
      .finally(() => {
        if (this.#removing.get(digest) === removal) this.#removing.delete(digest);
      });
    this.#removing.set(digest, removal);
    await removal;
  }

  #maybeCompact(): void {
    const journal = this.#journal;
    if (!journal || this.#closed) return;
    if (journal.appended < Math.max(10_000, this.#entries.size * 4)) return;
    void journal.snapshot(this.#snapshotEntries()).catch(() => undefined);
  }
}

/** cacache 20 supports `removeFully` (drop the bucket file), its typings do not declare it. */
const rmEntry = cacache.rm.entry as (
  cache: string,
  key: string,
  opts: { removeFully: boolean },
) => Promise<unknown>;

export function removeIndexEntry(dir: string, key: string): Promise<unknown> {
  return rmEntry(dir, key, { removeFully: true });
}

/** Registry and name of a write, and its announced size, for the store's events. */
function eventContext(context: WriteContext): { registry?: string; name?: string; size: number } {
  return {
    size: context.size ?? 0,
    ...(context.registry === undefined ? {} : { registry: context.registry }),
    ...(context.name === undefined ? {} : { name: context.name }),
  };
}

/** Reads into `into` at `position` of an open file (callback fs.read: no FileHandle promise per chunk). */
function readAt(fd: number, into: Buffer, position: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    read(fd, into, 0, into.length, position, (error, bytesRead) => {
      if (error) reject(new DrpError('DRP_CACHE_IO', 'reading a cached blob failed', { cause: error }));
      else resolve(into.subarray(0, bytesRead));
    });
  });
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}

function isMeta(value: unknown): value is BlobMeta {
  return (
    typeof value === 'object' &&
    value !== null &&
    Object.values(value as Record<string, unknown>).every((v) => typeof v === 'string')
  );
}

function sameMeta(a: BlobMeta | undefined, b: BlobMeta | undefined): boolean {
  if (b === undefined) return true;
  if (a === undefined) return false;
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}

/** Hash and size of a file, or undefined when it does not exist. */
export async function hashFile(
  path: string,
  algorithm: string,
): Promise<{ hex: string; size: number } | undefined> {
  const hash = createHash(algorithm);
  let size = 0;
  try {
    for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
      size += chunk.length;
      hash.update(chunk);
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  return { hex: hash.digest('hex'), size };
}
