/**
 * Keeping one process's entry table in step with the other processes on the cache directory.
 *
 * Every process, every `pollMs`: reads the new lines of the others' journals (journal-tail.ts)
 * and applies them — `T` of a known entry updates its recency (and marks it as used by
 * another process, which the evictor respects for `guardMs`), `T` of an unknown digest is
 * looked up on disk and adopted (index line + content file), `D` forgets the entry once its
 * content file is gone — then re-journals the entries it has open, so the evictor keeps them.
 *
 * The evictor (the holder of the evictor lease) also enforces the cap after each poll, and every
 * `housekeepingMs`: folds the journals of processes that are gone into the base snapshot
 * (rename the file aside, read the rest, apply, remove; then write the base), removes stale
 * journal temp files and an old removal-notes file, and every `rescanMs` reads the whole
 * index, adopting entries whose journal line was lost (a crash between commit and flush).
 * Every process collects dead spool files (spool-gc.ts) on the same housekeeping timer.
 */
import { rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import createDebug from 'debug';
import {
  JOURNAL_FILE,
  journalFileOf,
  journalFiles,
  journalOwner,
  writeBaseJournal,
} from './access-journal.js';
import { readIndex, SPOOL_FILE } from './blob-store-load.js';
import { contentPath } from './digest.js';
import type { EntryTable } from './entry-table.js';
import { deadOnThisHost, type EvictorLease } from './evictor-lease.js';
import { type JournalLine, JournalTail } from './journal-tail.js';
import { REMOVAL_NOTES_FILE } from './removal-notes.js';
import { collectStale, olderThan } from './spool-gc.js';

const debug = createDebug('drp:store:peers');

/** Journal temp files (snapshots, compactions) and journals being folded. */
const JOURNAL_LEFTOVER = /^drp-access\..*\.(tmp|folding)$/;
/** At most this many chunks (1 MiB each) per journal per poll: a huge file cannot stall a poll. */
const CHUNKS_PER_POLL = 8;

export interface PeerSyncOptions {
  readonly dir: string;
  readonly spoolDir: string;
  /** This process's id: its own journal is not read back. */
  readonly id: string;
  readonly table: EntryTable;
  readonly lease: EvictorLease;
  /** Journals read while opening, positioned at their end. */
  readonly tails: Map<string, JournalTail>;
  /** Looks a digest up on disk and adopts it; `at` is when another process used it. */
  readonly discover: (digest: string, at: number) => Promise<unknown>;
  readonly pollMs: number;
  readonly guardMs: number;
  /** Files younger than this are never garbage. */
  readonly graceMs: number;
  /** A journal not written for this long belongs to a process that is gone (or idle). */
  readonly journalDeadMs: number;
  readonly housekeepingMs: number;
  readonly rescanMs: number;
}

export class PeerSync {
  readonly #o: PeerSyncOptions;
  readonly #tails = new Map<string, JournalTail>();
  readonly #ownFile: string;
  readonly #timers: NodeJS.Timeout[] = [];
  #polling: Promise<void> | undefined;
  #housekeeping: Promise<void> | undefined;
  #lastRescan = performance.now();

  constructor(options: PeerSyncOptions) {
    this.#o = options;
    this.#ownFile = journalFileOf(options.id);
    for (const [name, tail] of options.tails) if (name !== JOURNAL_FILE) this.#tails.set(name, tail);
  }

  start(): void {
    const every = (ms: number, fn: () => Promise<unknown>) => {
      const timer = setInterval(() => void fn().catch((e: Error) => debug('%s', e.message)), ms);
      timer.unref();
      this.#timers.push(timer);
    };
    every(this.#o.pollMs, () => this.poll());
    every(this.#o.housekeepingMs, () => this.housekeeping());
  }

  stop(): Promise<unknown> {
    for (const timer of this.#timers) clearInterval(timer);
    return Promise.all([this.#polling, this.#housekeeping]);
  }

  /** Applies what the other processes journaled since the last poll. One at a time. */
  poll(): Promise<void> {
    this.#polling ??= this.#poll().finally(() => {
      this.#polling = undefined;
    });
    return this.#polling;
  }

  async #poll(): Promise<void> {
    const { table } = this.#o;
    const names = new Set(await journalFiles(this.#o.dir));
    for (const name of names) {
      if (name === JOURNAL_FILE || name === this.#ownFile || table.closed) continue;
      let tail = this.#tails.get(name);
      if (!tail) {
        tail = new JournalTail(join(this.#o.dir, name));
        this.#tails.set(name, tail);
      }
      for (let chunk = 0; chunk < CHUNKS_PER_POLL; chunk += 1) {
        await this.#apply(await tail.read());
        if (!tail.more) break;
      }
    }
    for (const name of this.#tails.keys()) if (!names.has(name)) this.#tails.delete(name);
    table.refreshPinned(this.#o.guardMs / 3);
    table.enforceCap();
  }

  async #apply(lines: readonly JournalLine[]): Promise<void> {
    const { table } = this.#o;
    for (const line of lines) {
      if (table.closed) return;
      if (line.op === 'T') {
        if (!table.remoteTouch(line.digest, line.at)) await this.#o.discover(line.digest, line.at);
        continue;
      }
      const entry = table.get(line.digest);
      if (!entry) continue;
      // Removed there; it may have been stored again since: forget it only if the file is gone.
      const gone = await stat(contentPath(this.#o.dir, entry.d)).then(
        () => false,
        (error: NodeJS.ErrnoException) => error.code === 'ENOENT',
      );
      if (gone) table.forget(entry);
    }
  }

  /** Spool GC everywhere; the evictor's chores on top. One at a time. */
  housekeeping(): Promise<void> {
    this.#housekeeping ??= this.#housekeep().finally(() => {
      this.#housekeeping = undefined;
    });
    return this.#housekeeping;
  }

  async #housekeep(): Promise<void> {
    const { dir, graceMs } = this.#o;
    await collectStale(this.#o.spoolDir, SPOOL_FILE, graceMs);
    if (!this.#o.lease.held || this.#o.table.closed) return;
    await collectStale(dir, JOURNAL_LEFTOVER, graceMs);
    await this.foldDeadJournals();
    const notes = join(dir, REMOVAL_NOTES_FILE);
    // Every live process polls the notes every few seconds; one nobody wrote for long is read.
    if (await olderThan(notes, this.#o.journalDeadMs)) await unlink(notes).catch(() => undefined);
    if (performance.now() - this.#lastRescan >= this.#o.rescanMs) {
      this.#lastRescan = performance.now();
      await this.rescan();
    }
  }

  /** Folds the journals of processes that are gone into the base snapshot; returns how many. */
  async foldDeadJournals(): Promise<number> {
    const { dir, table } = this.#o;
    let folded = 0;
    for (const name of await journalFiles(dir)) {
      const owner = journalOwner(name);
      if (!owner || name === this.#ownFile || !(await this.#dead(owner, join(dir, name)))) continue;
      const aside = join(dir, `${name}.${this.#o.id}.folding`);
      try {
        await rename(join(dir, name), aside);
      } catch {
        continue; // folded by someone else, or gone
      }
      // Same inode: the tail goes on from where it was.
      const tail = this.#tails.get(name) ?? new JournalTail(aside);
      tail.path = aside;
      for (;;) {
        await this.#apply(await tail.read());
        if (!tail.more) break;
      }
      this.#tails.delete(name);
      await unlink(aside).catch(() => undefined);
      folded += 1;
    }
    if (folded > 0) {
      debug('folded %d journals of processes that are gone', folded);
      if (!table.closed) await writeBaseJournal(dir, table.atimes());
    }
    return folded;
  }

  async #dead(owner: string, path: string): Promise<boolean> {
    // `host-pid-random` (evictor-lease.ts processId); the host may contain dashes.
    const parts = owner.split('-');
    const pid = Number(parts.at(-2));
    const host = parts.slice(0, -2).join('-');
    if (Number.isSafeInteger(pid) && deadOnThisHost({ host, pid, id: owner }, this.#o.id)) return true;
    return olderThan(path, this.#o.journalDeadMs);
  }

  /** Reads the whole index: adopts what the table lacks, forgets what is gone from disk. */
  async rescan(): Promise<void> {
    const { dir, table } = this.#o;
    const { found } = await readIndex(dir, new Map());
    const listed = new Set<string>();
    for (const entry of found) {
      listed.add(entry.d.digest);
      if (!table.has(entry.d.digest)) await this.#o.discover(entry.d.digest, entry.atime);
    }
    for (const entry of table.entries()) {
      if (listed.has(entry.d.digest) || entry.pins > 0 || table.removing(entry.d.digest)) continue;
      await table.present(entry);
    }
  }
}
