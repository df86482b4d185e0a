/**
 * The bytes of a fill as its cursors see them: the store writer's (everything written so far),
 * the tail window in front of it, and who is reading where. Holds no fill state: the fill
 * (fill.ts) decides, this keeps memory bounded and wakes readers.
 */
import { DrpError } from '../api/errors.js';
import type { ContentWriter } from '../store/content-store.js';
import type { BlobCursor } from './cursor.js';
import { TailWindow } from './tail-window.js';

/** Written bytes kept in the window for readers that keep pace. */
const RECENT_BYTES = 8 * 1024 * 1024;

export class FillBytes {
  readonly window = new TailWindow();
  readonly cursors = new Set<BlobCursor>();
  /** The store's writer; undefined when the store refused the fill from the start. */
  writer: ContentWriter | undefined;
  #waiters: (() => void)[] = [];

  /** Bytes readable now. */
  get available(): number {
    return this.window.end;
  }

  /** Window bytes the store does not have (passing through). */
  get unstored(): number {
    return this.window.end - Math.max(this.window.start, this.writer?.written ?? 0);
  }

  async read(position: number, length: number, into: Buffer): Promise<Buffer> {
    const held = this.window.copy(position, length, into);
    if (held) return held;
    const writer = this.writer;
    if (writer && position < writer.written) {
      const chunk = await writer.read(into.subarray(0, Math.min(length, into.length)), position);
      if (chunk.length === 0) throw new DrpError('DRP_CACHE_IO', 'written bytes are missing');
      return chunk;
    }
    throw new DrpError('DRP_CACHE_IO', 'bytes of a pass-through fill are no longer available');
  }

  /** Resolves on the next `notify()`. */
  wait(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  /** Frees window bytes no cursor needs: behind every cursor, or stored and not recent. */
  trim(): void {
    let lowest = Number.POSITIVE_INFINITY;
    for (const cursor of this.cursors) lowest = Math.min(lowest, cursor.position);
    const stored = this.writer?.written ?? 0;
    this.window.dropWhile((end, bytes) => end <= lowest || (end <= stored && bytes > RECENT_BYTES));
  }

  /** Frees the writer once no cursor reads its bytes any more; true when it did. */
  closeWriterIfUnread(): boolean {
    if (this.cursors.size > 0 || !this.writer) return false;
    const writer = this.writer;
    this.writer = undefined;
    void writer.close();
    return true;
  }
}
