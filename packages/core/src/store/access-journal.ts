/**
 * The access order of the store, shared by every process on the cache directory and kept
 * across restarts: text lines
 *
 *   T <digest> <epoch-ms>    the entry was stored or read at that time
 *   D <digest>               the entry was removed
 *
 * Each process appends only to its own file, `drp-access.<process id>.journal` (one writer per
 * file: no interleaving even where O_APPEND is not atomic, as on NFS), in batches (one write
 * per flush interval; a commit is flushed before it returns, so other processes learn of it).
 * Every process tails the others' files (journal-tail.ts). `drp-access.journal` is the base: a
 * merged snapshot written only by the directory's evictor (temp file + rename), which folds the
 * files of processes that are gone into it. Lines are hints, never authority: existence comes
 * from the cacache index and the content file, so a replayed, stale or hostile line can cost a
 * stat, never a wrong entry.
 */
import { randomBytes } from 'node:crypto';
import { open, readdir, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import createDebug from 'debug';
import { JournalTail } from './journal-tail.js';

const debug = createDebug('drp:store:journal');

/** The base snapshot (and the whole journal of drp before the store was shared). */
export const JOURNAL_FILE = 'drp-access.journal';
const PROCESS_FILE = /^drp-access\.([A-Za-z0-9_-][A-Za-z0-9._-]{0,127})\.journal$/;

/** The process id a journal file belongs to; undefined for the base and anything else. */
export function journalOwner(name: string): string | undefined {
  return PROCESS_FILE.exec(name)?.[1];
}

export function journalFileOf(id: string): string {
  return `drp-access.${id}.journal`;
}

/** The journal files in `dir`: the base first, then one per process. */
export async function journalFiles(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const own = names.filter((n) => journalOwner(n) !== undefined).sort();
  return names.includes(JOURNAL_FILE) ? [JOURNAL_FILE, ...own] : own;
}

/** Last access time per digest over every journal file (D lines do not matter here: the index says what exists). */
export async function readJournals(
  dir: string,
): Promise<{ atimes: Map<string, number>; tails: Map<string, JournalTail> }> {
  const atimes = new Map<string, number>();
  const tails = new Map<string, JournalTail>();
  for (const name of await journalFiles(dir)) {
    const tail = new JournalTail(join(dir, name));
    for (;;) {
      const lines = await tail.read();
      if (lines.length === 0 && !tail.more) break;
      for (const line of lines) {
        if (line.op === 'T' && line.at > (atimes.get(line.digest) ?? -1)) atimes.set(line.digest, line.at);
      }
    }
    tails.set(name, tail);
  }
  debug('replayed %d journal files, %d entries', tails.size, atimes.size);
  return { atimes, tails };
}

/** Writes `entries` as the base snapshot (temp file with a unique name, then rename). */
export async function writeBaseJournal(
  dir: string,
  entries: Iterable<readonly [string, number]>,
): Promise<void> {
  const lines: string[] = [];
  for (const [digest, at] of entries) lines.push(`T ${digest} ${Math.round(at)}\n`);
  await replaceFile(join(dir, JOURNAL_FILE), lines.join(''));
}

async function replaceFile(file: string, text: string): Promise<void> {
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, text, { mode: 0o600 });
    await rename(tmp, file);
  } catch (error) {
    // A full disk must not stop the cache: the old file stays, no half-written one is left.
    debug('replacing %s failed: %s', file, (error as Error).message);
    await unlink(tmp).catch(() => undefined);
  }
}

/** This process's own journal file. */
export class AccessJournal {
  readonly file: string;
  readonly #flushMs: number;
  #pending: string[] = [];
  #flushing: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #appended = 0;
  #closed = false;
  /** What this process wrote that still matters: the content of a compacted file. */
  readonly #own = new Map<string, number>();

  constructor(dir: string, id: string, flushMs = 1000) {
    this.file = join(dir, journalFileOf(id));
    this.#flushMs = flushMs;
  }

  /** Lines appended since the file was last compacted. */
  get appended(): number {
    return this.#appended;
  }

  /** Records a use (written with the next flush). */
  touch(digest: string, at: number): void {
    const ms = Math.round(at);
    this.#own.set(digest, ms);
    this.#append(`T ${digest} ${ms}`);
  }

  remove(digest: string): void {
    this.#own.delete(digest);
    this.#append(`D ${digest}`);
  }

  /** Forgets a digest another process removed (no line: that process wrote one). */
  forget(digest: string): void {
    this.#own.delete(digest);
  }

  /** Writes pending lines now: one append of whole lines. */
  flush(): Promise<void> {
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#pending.length === 0) return this.#flushing;
    const data = `${this.#pending.join('\n')}\n`;
    this.#pending = [];
    const run = async () => {
      const handle = await open(this.file, 'a', 0o600);
      try {
        await handle.write(data);
      } finally {
        await handle.close();
      }
    };
    this.#flushing = this.#flushing.then(run, run).catch((error: unknown) => {
      // Losing access times costs LRU precision, never correctness: keep serving.
      debug('journal append failed: %s', (error as Error).message);
    });
    this.#maybeCompact();
    return this.#flushing;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.flush();
  }

  /** Removes this process's file (its lines are in the base snapshot the caller just wrote). */
  async discard(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#pending = [];
    await this.#flushing;
    await unlink(this.file).catch(() => undefined);
  }

  #append(line: string): void {
    this.#pending.push(line);
    this.#appended += 1;
    if (!this.#timer && !this.#closed) {
      this.#timer = setTimeout(() => void this.flush(), this.#flushMs);
      this.#timer.unref();
    }
  }

  /** Rewrites the file with the last use of each digest once it has grown well past that. */
  #maybeCompact(): void {
    if (this.#closed || this.#appended < Math.max(10_000, this.#own.size * 4)) return;
    this.#appended = 0;
    const lines: string[] = [];
    for (const [digest, at] of this.#own) lines.push(`T ${digest} ${at}\n`);
    const run = () => replaceFile(this.file, lines.join(''));
    this.#flushing = this.#flushing.then(run, run);
  }
}
