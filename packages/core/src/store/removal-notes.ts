/**
 * Removals made by another process (the `drp-server cache rm|prune|verify --fix` tools) while a
 * daemon serves the same directory. The tool appends `D <digest>` lines to
 * `<cacheDir>/drp-removed.log` after deleting the index line and the content file; each daemon
 * polls the file's size and, for every new line, forgets the entry if its content file is gone
 * (it may have stored the blob again since). Lines are small and appended with O_APPEND, so
 * concurrent writers do not interleave. A store that opens starts reading at the file's end
 * (the index it loads already reflects every removal noted so far); the file is never cleared
 * on open, since other processes may not have read its last lines yet. The directory's
 * evictor removes it once nobody has written to it for a while (peer-sync.ts).
 */
import { open, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import createDebug from 'debug';

const debug = createDebug('drp:store:removals');

export const REMOVAL_NOTES_FILE = 'drp-removed.log';
/** Read at most this much per poll, whatever the file grew by: the rest comes next poll. */
const MAX_POLL_BYTES = 1024 * 1024;
const DIGEST_LINE = /^D (sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

/** Records digests another process removed from the store in `cacheDir`. */
export async function noteRemovals(cacheDir: string, digests: readonly string[]): Promise<void> {
  if (digests.length === 0) return;
  const handle = await open(join(cacheDir, REMOVAL_NOTES_FILE), 'a', 0o600);
  try {
    await handle.write(digests.map((d) => `D ${d}\n`).join(''));
  } finally {
    await handle.close();
  }
}

/** Reads lines appended since the last call. One per store instance. */
export class RemovalNotesReader {
  readonly #file: string;
  #offset = 0;

  constructor(cacheDir: string) {
    this.#file = join(cacheDir, REMOVAL_NOTES_FILE);
  }

  /** Deletes the notes and starts from the beginning (tests; a store uses skipToEnd). */
  async reset(): Promise<void> {
    await unlink(this.#file).catch(() => undefined);
    this.#offset = 0;
  }

  /** Starts after what is noted now (on store open: the index already reflects it). */
  async skipToEnd(): Promise<void> {
    this.#offset = await stat(this.#file).then(
      (st) => st.size,
      () => 0,
    );
  }

  /** Digests noted since the last call; empty when nothing changed. */
  async poll(): Promise<string[]> {
    let size: number;
    try {
      size = (await stat(this.#file)).size;
    } catch {
      this.#offset = 0;
      return [];
    }
    // Another store instance cleared it: read it again from the start (removals are idempotent).
    if (size < this.#offset) this.#offset = 0;
    if (size === this.#offset) return [];
    const handle = await open(this.#file, 'r');
    try {
      const length = Math.min(size - this.#offset, MAX_POLL_BYTES);
      const buffer = Buffer.alloc(length);
      const { bytesRead } = await handle.read(buffer, 0, length, this.#offset);
      const text = buffer.subarray(0, bytesRead).toString('utf8');
      // Only whole lines: a line being written is read on the next poll.
      const end = text.lastIndexOf('\n') + 1;
      this.#offset += Buffer.byteLength(text.slice(0, end));
      // Anything but a well-formed digest line (a torn or foreign write) is skipped.
      const digests = text
        .slice(0, end)
        .split('\n')
        .map((line) => DIGEST_LINE.exec(line.trim())?.[1])
        .filter((digest): digest is string => digest !== undefined);
      debug('%d removals noted by another process', digests.length);
      return digests;
    } finally {
      await handle.close();
    }
  }
}
