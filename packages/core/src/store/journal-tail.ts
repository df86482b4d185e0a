/**
 * Reading another process's access journal as it grows: whole lines only (a line being written
 * is read on the next call), at most 1 MiB per call, from where the last call stopped. A file
 * replaced (compaction: new inode) or truncated is read again from the start; replaying lines
 * is harmless (they are hints). Anything but a well-formed line is skipped, and an overlong
 * run without a newline is dropped, so a torn, foreign or hostile file cannot reach the store
 * or memory whole.
 */
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';

const MAX_READ = 1024 * 1024;
/** Longer than any real line (`T sha512:<128 hex> <ms>` is 150 bytes). */
const MAX_LINE = 256;
const LINE = /^([TD]) (sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})(?: (\d{1,16}))?$/;

export type JournalLine =
  | { readonly op: 'T'; readonly digest: string; readonly at: number }
  | { readonly op: 'D'; readonly digest: string };

export function parseJournalLine(text: string): JournalLine | undefined {
  const match = LINE.exec(text);
  if (!match) return undefined;
  const digest = match[2] as string;
  if (match[1] === 'D') return { op: 'D', digest };
  if (match[3] === undefined) return undefined;
  return { op: 'T', digest, at: Number(match[3]) };
}

export class JournalTail {
  path: string;
  #offset = 0;
  #ino: number | undefined;
  /** True when the last read stopped at the read bound before the end (call again). */
  more = false;
  /** Epoch ms of the file's mtime at the last read. */
  mtimeMs = 0;

  constructor(path: string) {
    this.path = path;
  }

  /** New whole lines; empty when nothing changed or the file is gone. */
  async read(): Promise<JournalLine[]> {
    this.more = false;
    let size: number;
    let length: number;
    let buffer: Buffer;
    let bytesRead = 0;
    try {
      // open, then fstat: on NFS an open revalidates the attributes (close-to-open).
      // O_NONBLOCK: a FIFO put in place of a journal must not block a thread-pool thread.
      const handle = await open(this.path, constants.O_RDONLY | constants.O_NONBLOCK);
      try {
        const st = await handle.stat();
        if (!st.isFile()) return [];
        size = st.size;
        this.mtimeMs = st.mtimeMs;
        if (this.#ino !== st.ino || size < this.#offset) {
          this.#ino = st.ino;
          this.#offset = 0;
        }
        if (size === this.#offset) return [];
        length = Math.min(size - this.#offset, MAX_READ);
        buffer = Buffer.alloc(length);
        ({ bytesRead } = await handle.read(buffer, 0, length, this.#offset));
      } finally {
        await handle.close();
      }
    } catch {
      return [];
    }
    const chunk = buffer.subarray(0, bytesRead);
    let end = chunk.lastIndexOf(0x0a) + 1;
    if (end === 0) {
      // No newline at all: a line being written, or garbage; skip garbage that is too long.
      if (bytesRead > MAX_LINE) end = bytesRead;
      else return [];
    }
    this.#offset += end;
    this.more = length === MAX_READ && this.#offset < size;
    const lines: JournalLine[] = [];
    for (const text of chunk.subarray(0, end).toString('latin1').split('\n')) {
      if (text.length > MAX_LINE) continue;
      const line = parseJournalLine(text);
      if (line) lines.push(line);
    }
    return lines;
  }
}
