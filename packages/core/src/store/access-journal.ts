/**
 * The access order of the store, kept across restarts: an append-only journal of text lines
 * in the cache directory,
 *
 *   T <digest> <epoch-ms>    the blob was stored or read at that time
 *   D <digest>               the blob was removed
 *
 * Appends are batched (one write per flush interval) so a busy cache does not pay a write per
 * hit. On open the journal is replayed and rewritten as a snapshot (temp file + rename, so a
 * crash leaves either the old or the new file); it is compacted again when it has grown well
 * past the number of entries. A torn last line from a crash is ignored.
 */
import { open, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import createDebug from 'debug';

const debug = createDebug('drp:store:journal');

const LINE = /^([TD]) (\S+)(?: (\d+))?$/;

export class AccessJournal {
  readonly #file: string;
  #pending: string[] = [];
  #flushing: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #appended = 0;
  #closed = false;
  readonly #flushMs: number;

  private constructor(file: string, flushMs: number) {
    this.#file = file;
    this.#flushMs = flushMs;
  }

  /** Reads the journal: last access time per digest that was not removed afterwards. */
  static async open(
    file: string,
    flushMs = 1000,
  ): Promise<{ journal: AccessJournal; atimes: Map<string, number> }> {
    const atimes = new Map<string, number>();
    let text = '';
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    let lines = 0;
    for (const line of text.split('\n')) {
      const match = LINE.exec(line);
      if (!match) continue;
      lines += 1;
      const digest = match[2] ?? '';
      if (match[1] === 'D') atimes.delete(digest);
      else atimes.set(digest, Number(match[3] ?? 0));
    }
    debug('replayed %d lines, %d entries', lines, atimes.size);
    return { journal: new AccessJournal(file, flushMs), atimes };
  }

  /** Lines appended since the last snapshot. */
  get appended(): number {
    return this.#appended;
  }

  touch(digest: string, at: number): void {
    this.#append(`T ${digest} ${Math.round(at)}`);
  }

  remove(digest: string): void {
    this.#append(`D ${digest}`);
  }

  /** Replaces the journal with a snapshot of `entries` (oldest access first). */
  snapshot(entries: Iterable<readonly [string, number]>): Promise<void> {
    const lines: string[] = [];
    for (const [digest, at] of entries) lines.push(`T ${digest} ${Math.round(at)}\n`);
    // Whatever is pending is older than the snapshot's state: drop it, the snapshot has it.
    this.#pending = [];
    this.#appended = 0;
    const run = async () => {
      const tmp = `${this.#file}.${process.pid}.tmp`;
      try {
        await writeFile(tmp, lines.join(''), { mode: 0o600 });
        await rename(tmp, this.#file);
      } catch (error) {
        // A full disk must not stop the cache: the old journal stays, access order is kept
        // in memory, and no half-written snapshot is left behind.
        debug('journal snapshot failed: %s', (error as Error).message);
        await unlink(tmp).catch(() => undefined);
      }
    };
    this.#flushing = this.#flushing.then(run, run);
    return this.#flushing;
  }

  /** Writes pending lines now. */
  flush(): Promise<void> {
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#pending.length === 0) return this.#flushing;
    const data = `${this.#pending.join('\n')}\n`;
    this.#pending = [];
    const run = async () => {
      const handle = await open(this.#file, 'a', 0o600);
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
    return this.#flushing;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.flush();
  }

  #append(line: string): void {
    this.#pending.push(line);
    this.#appended += 1;
    if (!this.#timer && !this.#closed) {
      this.#timer = setTimeout(() => void this.flush(), this.#flushMs);
      this.#timer.unref();
    }
  }
}
