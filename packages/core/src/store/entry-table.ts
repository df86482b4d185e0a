/**
 * The blob store's in-memory entry table: every entry of the cache directory (its own commits
 * and those other processes reported) in least-recently-used order, the byte total and
 * counters, pins, the size cap, and removals (memory first, then index line and content file,
 * then the journal's D line). Access times go to the access journal as they change.
 *
 * Only the directory's evictor (the process holding the evictor lease, `evictor()`) enforces
 * the cap and expiry; it skips entries pinned here and entries another process used in the
 * last `guardMs` (its readers re-touch what they have open), so no process removes a blob
 * another one is serving while it is serving it.
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
  /** performance.now() when another process last reported using it; 0 = never. */
  remoteAt: number;
  /** performance.now() when this process last journaled a use of it. */
  journaledAt: number;
}

/** A fresh entry (not yet in a table). */
export function newEntry(d: BlobDigest, size: number, meta: ContentMeta | undefined, atime: number): Entry {
  return { d, size, atime, meta, pins: 0, remoteAt: 0, journaledAt: 0 };
}

export type EvictReason = 'size' | 'inactive' | 'manual' | 'corrupt';

export interface EntryTableOptions {
  readonly dir: string;
  readonly maxSizeBytes: number;
  readonly now: () => number;
  readonly events?: CacheEvents | undefined;
  readonly otherBytes?: (() => number) | undefined;
  /** True while this process is the directory's evictor. Default: always. */
  readonly evictor?: (() => boolean) | undefined;
  /** Entries another process used this recently are never evicted. Default 10 s. */
  readonly guardMs?: number | undefined;
}

export class EntryTable {
  readonly #options: EntryTableOptions;
  readonly #journal: AccessJournal;
  /** Insertion order = access order, oldest first (delete + set on touch). */
  readonly #entries = new Map<string, Entry>();
  /** Removals in progress per digest; a commit of the same digest waits for them. */
  readonly #removing = new Map<string, Promise<void>>();
  /** Entries open in this process. */
  readonly #pinned = new Set<Entry>();
  #bytes = 0;
  /** Highest atime placed at the end; an entry placed after it with a lower one breaks the order. */
  #maxAtime = 0;
  #outOfOrder = false;
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
      this.#maxAtime = Math.max(this.#maxAtime, entry.atime);
    }
  }

  get journal(): AccessJournal {
    return this.#journal;
  }

  /** True while this process is the directory's evictor. */
  get evictor(): boolean {
    return this.#options.evictor?.() ?? true;
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
    return [...this.#ordered().values()];
  }

  /** Digests from least to most recently used. */
  accessOrder(): string[] {
    return [...this.#ordered().keys()];
  }

  /** True while a removal of `digest` is under way here. */
  removing(digest: string): boolean {
    return this.#removing.has(digest);
  }

  stats(): { entries: number; bytes: number; stored: number; evicted: number; pinned: number } {
    let pinned = 0;
    for (const entry of this.#entries.values()) if (entry.pins > 0) pinned += 1;
    const { size: entries } = this.#entries;
    return { entries, bytes: this.#bytes, stored: this.#stored, evicted: this.#evicted, pinned };
  }

  /** (digest, last access) of every entry, least recently used first: the base journal. */
  *atimes(): Iterable<readonly [string, number]> {
    for (const [digest, entry] of this.#ordered()) yield [digest, entry.atime] as const;
  }

  touch(entry: Entry): void {
    // Removed meanwhile (evicted, deleted): not an entry any more, nothing to record.
    if (this.#entries.get(entry.d.digest) !== entry) return;
    entry.atime = Math.max(this.#options.now(), entry.atime);
    this.#placeLast(entry);
    entry.journaledAt = performance.now();
    this.#journal.touch(entry.d.digest, entry.atime);
  }

  /** Records a commit; resolves when its journal line is written (other processes learn of it). */
  add(d: BlobDigest, size: number, meta: ContentMeta | undefined, ms: number): Promise<void> {
    const previous = this.#entries.get(d.digest);
    if (previous) {
      previous.meta = meta;
      this.touch(previous);
      return Promise.resolve();
    }
    const entry = newEntry(d, size, meta, this.#options.now());
    this.#placeLast(entry);
    this.#bytes += size;
    this.#stored += 1;
    entry.journaledAt = performance.now();
    // At once: the other processes learn of the commit (and count its bytes) within a poll.
    this.#journal.touch(d.digest, entry.atime);
    const written = this.#journal.flush();
    this.#options.events?.publish('store', { kind: 'blob', digest: d.digest, size, ms: Math.round(ms) });
    this.enforceCap();
    return written;
  }

  /** Takes in an entry another process committed (found on disk): no event, counted once. */
  adopt(d: BlobDigest, size: number, meta: ContentMeta | undefined, atime: number): Entry {
    const previous = this.#entries.get(d.digest);
    if (previous) return previous;
    const entry = newEntry(d, size, meta, atime);
    entry.remoteAt = performance.now();
    this.#placeLast(entry);
    this.#bytes += size;
    this.enforceCap();
    return entry;
  }

  /** Another process used `digest` at `at`; false when this table does not know it. */
  remoteTouch(digest: string, at: number): boolean {
    const entry = this.#entries.get(digest);
    if (!entry) return false;
    entry.remoteAt = performance.now();
    if (at > entry.atime) {
      entry.atime = at;
      this.#placeLast(entry);
    }
    return true;
  }

  /** Drops an entry another process removed: no event, no journal line, no file touched. */
  forget(entry: Entry): void {
    if (this.#entries.get(entry.d.digest) !== entry) return;
    this.#entries.delete(entry.d.digest);
    this.#bytes -= entry.size;
    this.#journal.forget(entry.d.digest);
  }

  pin(entry: Entry): void {
    entry.pins += 1;
    this.#pinned.add(entry);
  }

  unpin(entry: Entry): void {
    entry.pins -= 1;
    if (entry.pins <= 0) this.#pinned.delete(entry);
  }

  /** Re-journals entries open here that were not journaled for `everyMs`: the evictor keeps them. */
  refreshPinned(everyMs: number): void {
    const stale = performance.now() - everyMs;
    for (const entry of this.#pinned) if (entry.journaledAt < stale) this.touch(entry);
  }

  /**
   * Evicts least recently used blobs until the total fits under the cap: only in the
   * directory's evictor, never a pinned one or one another process used within the guard.
   */
  enforceCap(): void {
    if (!this.evictor) return;
    const max = this.#options.maxSizeBytes - (this.#options.otherBytes?.() ?? 0);
    if (this.#bytes <= max) return;
    for (const entry of [...this.#ordered().values()]) {
      if (this.#bytes <= max) break;
      if (this.#busy(entry)) continue;
      void this.remove(entry, 'size');
    }
  }

  /** Removes entries not read since `cutoff` (evictor only, unpinned); returns how many. */
  async sweepBefore(cutoff: number): Promise<number> {
    if (!this.evictor) return 0;
    const victims: Entry[] = [];
    for (const entry of this.#ordered().values()) {
      // Access order is by atime, oldest first: stop at the first recent one.
      if (entry.atime > cutoff) break;
      if (!this.#busy(entry)) victims.push(entry);
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
        // Only now: a process reading the line finds both the index line and the file gone.
        if (this.#entries.get(digest) === undefined) this.#journal.remove(digest);
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
    this.#options.events?.publish('evict', { digest: entry.d.digest, size: entry.size, reason });
    return true;
  }

  /** Pinned here, or used by another process within the guard. */
  #busy(entry: Entry): boolean {
    if (entry.pins > 0) return true;
    return entry.remoteAt > 0 && performance.now() - entry.remoteAt < (this.#options.guardMs ?? 10_000);
  }

  /** Moves (or adds) an entry to the most recently used end. */
  #placeLast(entry: Entry): void {
    this.#entries.delete(entry.d.digest);
    this.#entries.set(entry.d.digest, entry);
    if (entry.atime < this.#maxAtime) this.#outOfOrder = true;
    else this.#maxAtime = entry.atime;
  }

  /** The entries by access time: re-sorted only when other processes' times broke the order. */
  #ordered(): Map<string, Entry> {
    if (!this.#outOfOrder) return this.#entries;
    const sorted = [...this.#entries.values()].sort((a, b) => a.atime - b.atime);
    this.#entries.clear();
    for (const entry of sorted) this.#entries.set(entry.d.digest, entry);
    this.#maxAtime = sorted.at(-1)?.atime ?? 0;
    this.#outOfOrder = false;
    return this.#entries;
  }
}
