/**
 * The blob store's in-memory entry table: every stored blob in least-recently-used order, the
 * byte total and counters, pins, the size cap, and removals (memory first, then index line and
 * content file). Access times go to the access journal as they change.
 */
import { stat, unlink } from 'node:fs/promises';
import createDebug from 'debug';
import type { CacheEvents } from '../events.js';
import type { AccessJournal } from './access-journal.js';
import type { ContentMeta } from './content-store.js';
import { type BlobDigest, blobKey, contentPath } from './digest.js';
import { removeIndexEntry } from './fs-helpers.js';

const debug = createDebug('drp:store');

export interface Entry {
  readonly d: BlobDigest;
  readonly size: number;
  atime: number;
  meta: ContentMeta | undefined;
  pins: number;
}

export type EvictReason = 'size' | 'inactive' | 'manual' | 'corrupt';

export interface EntryTableOptions {
  readonly dir: string;
  readonly maxSizeBytes: number;
  readonly now: () => number;
  readonly events?: CacheEvents | undefined;
  readonly otherBytes?: (() => number) | undefined;
}

export class EntryTable {
  readonly #options: EntryTableOptions;
  readonly #journal: AccessJournal;
  /** Insertion order = access order, oldest first (delete + set on touch). */
  readonly #entries = new Map<string, Entry>();
  /** Removals in progress per digest; a commit of the same digest waits for them. */
  readonly #removing = new Map<string, Promise<void>>();
  #bytes = 0;
  #stored = 0;
  #evicted = 0;
  #closed = false;

  /** `loaded` must be sorted oldest access first. */
  constructor(options: EntryTableOptions, journal: AccessJournal, loaded: Iterable<Entry>) {
    this.#options = options;
    this.#journal = journal;
    for (const entry of loaded) {
      this.#entries.set(entry.d.digest, entry);
      this.#bytes += entry.size;
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  get size(): number {
    return this.#entries.size;
  }

  get bytes(): number {
    return this.#bytes;
  }

  get(digest: string): Entry | undefined {
    return this.#entries.get(digest);
  }

  has(digest: string): boolean {
    return this.#entries.has(digest);
  }

  /** A copy of the entries, least recently used first (safe to remove while iterating). */
  entries(): Entry[] {
    return [...this.#entries.values()];
  }

  /** Digests from least to most recently used. */
  accessOrder(): string[] {
    return [...this.#entries.keys()];
  }

  stats(): { entries: number; bytes: number; stored: number; evicted: number; pinned: number } {
    let pinned = 0;
    for (const entry of this.#entries.values()) if (entry.pins > 0) pinned += 1;
    const { size: entries } = this.#entries;
    return { entries, bytes: this.#bytes, stored: this.#stored, evicted: this.#evicted, pinned };
  }

  /** Replaces the journal with the current access order. */
  snapshot(): Promise<void> {
    return this.#journal.snapshot(this.#snapshotEntries());
  }

  touch(entry: Entry): void {
    const now = this.#options.now();
    entry.atime = Math.max(now, entry.atime);
    this.#entries.delete(entry.d.digest);
    this.#entries.set(entry.d.digest, entry);
    this.#journal.touch(entry.d.digest, entry.atime);
    this.#maybeCompact();
  }

  add(d: BlobDigest, size: number, meta: ContentMeta | undefined, ms: number): void {
    const previous = this.#entries.get(d.digest);
    if (previous) {
      previous.meta = meta;
      this.touch(previous);
      return;
    }
    const entry: Entry = { d, size, atime: this.#options.now(), meta, pins: 0 };
    this.#entries.set(d.digest, entry);
    this.#bytes += size;
    this.#stored += 1;
    this.#journal.touch(d.digest, entry.atime);
    this.#options.events?.publish('store', { kind: 'blob', digest: d.digest, size, ms: Math.round(ms) });
    this.enforceCap();
  }

  /** Evicts least recently used, unpinned blobs until the total fits under the cap. */
  enforceCap(): void {
    const max = this.#options.maxSizeBytes - (this.#options.otherBytes?.() ?? 0);
    if (this.#bytes <= max) return;
    for (const entry of [...this.#entries.values()]) {
      if (this.#bytes <= max) break;
      if (entry.pins > 0) continue;
      void this.remove(entry, 'size');
    }
  }

  /** Removes entries not read since `cutoff` (unpinned); returns how many. */
  async sweepBefore(cutoff: number): Promise<number> {
    const victims: Entry[] = [];
    for (const entry of this.#entries.values()) {
      // Access order is by atime, oldest first: stop at the first recent one.
      if (entry.atime > cutoff) break;
      if (entry.pins === 0) victims.push(entry);
    }
    await Promise.all(victims.map((entry) => this.remove(entry, 'inactive')));
    return victims.length;
  }

  /** The entry when its content file exists; a vanished one is forgotten (accounting stays true). */
  async present(entry: Entry | undefined): Promise<Entry | undefined> {
    if (!entry) return undefined;
    try {
      await stat(contentPath(this.#options.dir, entry.d));
      return entry;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') return entry;
      debug('content of %s was removed by another process; forgetting it', entry.d.digest);
      // Its index line too (usually gone already); a commit of the digest waits for this.
      void this.remove(entry, 'manual');
      return undefined;
    }
  }

  async remove(entry: Entry, reason: EvictReason): Promise<void> {
    if (!this.#drop(entry, reason)) return;
    const { dir } = this.#options;
    const digest = entry.d.digest;
    const previous = this.#removing.get(digest) ?? Promise.resolve();
    const removal = previous
      .then(async () => {
        // Index line first: a crash in between leaves an orphan file, never a dangling entry.
        await removeIndexEntry(dir, blobKey(digest));
        await unlink(contentPath(dir, entry.d)).catch((error: NodeJS.ErrnoException) => {
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

  /** Resolves when a removal of `digest` in progress (if any) has finished. */
  async removed(digest: string): Promise<void> {
    await this.#removing.get(digest);
  }

  /** Resolves when every removal started so far has finished. */
  async settled(): Promise<void> {
    while (this.#removing.size > 0) await Promise.all(this.#removing.values());
  }

  /** Stops journal compaction and new commits; resolves when current removals are done. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(this.#removing.values());
  }

  /** Writes the access journal out; the last step of closing the store. */
  closeJournal(): Promise<void> {
    return this.#journal.close();
  }

  /** Forgets an entry in memory (synchronously, so accounting is immediate) and records it. */
  #drop(entry: Entry, reason: EvictReason): boolean {
    if (this.#entries.get(entry.d.digest) !== entry) return false;
    this.#entries.delete(entry.d.digest);
    this.#bytes -= entry.size;
    this.#evicted += 1;
    this.#journal.remove(entry.d.digest);
    this.#options.events?.publish('evict', { digest: entry.d.digest, size: entry.size, reason });
    return true;
  }

  *#snapshotEntries(): Iterable<readonly [string, number]> {
    for (const [digest, entry] of this.#entries) yield [digest, entry.atime] as const;
  }

  #maybeCompact(): void {
    if (this.#closed) return;
    if (this.#journal.appended < Math.max(10_000, this.#entries.size * 4)) return;
    void this.#journal.snapshot(this.#snapshotEntries()).catch(() => undefined);
  }
}
