/**
 * The newest bytes of a fill, kept in memory by offset. Readers that keep pace with the fill
 * copy from here instead of reading the store back (no syscall, no thread-pool round trip);
 * when the store refused the fill (pass-through), this is the only copy of the bytes not yet
 * read by every client. The window is contiguous: `[start, end)`.
 */
interface Chunk {
  readonly offset: number;
  readonly data: Buffer;
}

export class TailWindow {
  #chunks: Chunk[] = [];
  #bytes = 0;
  #end = 0;

  /** Bytes held. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Offset of the first byte held (= end when empty). */
  get start(): number {
    return this.#chunks[0]?.offset ?? this.#end;
  }

  get end(): number {
    return this.#end;
  }

  /** Starts an empty window at `offset` (a resumed fill: the bytes before it are in the store). */
  startAt(offset: number): void {
    if (this.#chunks.length > 0) throw new Error('the window already holds bytes');
    this.#end = offset;
  }

  /** Appends the bytes that follow `end`. */
  push(data: Buffer): void {
    this.#chunks.push({ offset: this.#end, data });
    this.#bytes += data.length;
    this.#end += data.length;
  }

  /** Copies up to `length` bytes at `position` into `into`; undefined when not held. */
  copy(position: number, length: number, into: Buffer): Buffer | undefined {
    if (position < this.start || position >= this.#end) return undefined;
    const n = Math.min(length, into.length, this.#end - position);
    let copied = 0;
    for (const chunk of this.#chunks) {
      if (copied >= n) break;
      const at = position + copied;
      const chunkEnd = chunk.offset + chunk.data.length;
      if (at >= chunkEnd) continue;
      const from = at - chunk.offset;
      copied += chunk.data.copy(into, copied, from, Math.min(chunk.data.length, from + n - copied));
    }
    return into.subarray(0, copied);
  }

  /** Drops the oldest chunks while `droppable(chunkEnd, bytesHeld)` says so. */
  dropWhile(droppable: (chunkEnd: number, bytes: number) => boolean): void {
    while (this.#chunks.length > 0) {
      const first = this.#chunks[0] as Chunk;
      if (!droppable(first.offset + first.data.length, this.#bytes)) break;
      this.#chunks.shift();
      this.#bytes -= first.data.length;
    }
  }

  clear(): void {
    this.#chunks = [];
    this.#bytes = 0;
  }
}
