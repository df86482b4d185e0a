/**
 * One client's view of a fill: bytes `[start, end)`, read as they arrive. Its `next` is a
 * ChunkSource (http/send.ts): it fills the caller's reused buffer, waiting for more bytes when
 * it has caught up with the fill. The engine hands cursors out already registered with their
 * fill, so the fill keeps every byte a cursor still needs.
 */
import { DrpError } from '../api/errors.js';

/** What a cursor needs of its fill. */
export interface CursorSource {
  /** Size announced by upstream, when known. */
  readonly size: number | undefined;
  /** Bytes readable now. */
  readonly available: number;
  /** True once every byte is known to match the digest. */
  readonly verified: boolean;
  readonly error: Error | undefined;
  read(position: number, length: number, into: Buffer): Promise<Buffer>;
  /** Resolves on the next progress (bytes, verified, failed). */
  changed(): Promise<void>;
  /** A cursor advanced or narrowed (the fill may free memory). */
  moved(): void;
  detach(cursor: BlobCursor): void;
}

export class BlobCursor {
  readonly #source: CursorSource;
  #position: number;
  #end: number | undefined;
  #read = false;
  #closed = false;

  constructor(source: CursorSource, start = 0, end?: number) {
    this.#source = source;
    this.#position = start;
    this.#end = end ?? source.size;
  }

  get position(): number {
    return this.#position;
  }

  /** Limits the cursor to `[start, end)` (a Range request); only forward, only before reading. */
  narrow(start: number, end?: number): void {
    if (this.#read || start < this.#position) {
      throw new DrpError('DRP_INTERNAL', 'a cursor can only be narrowed forward, before reading');
    }
    this.#position = start;
    if (end !== undefined) this.#end = end;
    this.#source.moved();
  }

  /** The next bytes (into `into`); null at the end. Rejects when the fill failed. */
  readonly next = async (into: Buffer): Promise<Buffer | null> => {
    const source = this.#source;
    this.#read = true;
    for (;;) {
      if (this.#closed) throw new DrpError('DRP_INTERNAL', 'reader closed');
      const end = this.#end;
      if (end !== undefined && this.#position >= end) return null;
      const limit = this.#limit();
      if (this.#position < limit) {
        const want = Math.min(into.length, limit - this.#position);
        const chunk = await source.read(this.#position, want, into);
        this.#position += chunk.length;
        source.moved();
        return chunk;
      }
      if (source.error) throw source.error;
      if (source.verified) {
        if (end !== undefined && this.#position < end) {
          throw new DrpError('DRP_UPSTREAM_TRUNCATED', 'the blob is shorter than the requested range');
        }
        return null;
      }
      await source.changed();
    }
  };

  /**
   * How far this cursor may read now. The last byte of a known length waits for verification,
   * so that a response never looks complete before the blob is known to be right.
   */
  #limit(): number {
    const source = this.#source;
    const end = this.#end;
    if (source.verified) return end === undefined ? source.available : Math.min(source.available, end);
    return end === undefined ? source.available : Math.min(source.available, end - 1);
  }

  /** Stops reading (the client is done or gone). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#source.detach(this);
  }
}
