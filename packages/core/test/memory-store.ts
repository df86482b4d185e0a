/**
 * A second ContentStore, in memory, written for the tests: the conformance suite runs against
 * it too, so the suite checks the contract rather than the default store's quirks. Entries are
 * buffers; a handle keeps its buffer, so a delete does not disturb it.
 */
import { createHash } from 'node:crypto';
import { DrpError } from '../src/api/errors.ts';
import type {
  ContentHandle,
  ContentMeta,
  ContentStore,
  ContentStoreStats,
  ContentWriter,
} from '../src/store/content-store.ts';

interface Entry {
  readonly data: Buffer;
  meta: ContentMeta | undefined;
  pins: number;
}

function checked(digest: string, data: Buffer): void {
  const [algorithm = '', hex] = digest.split(':');
  if (createHash(algorithm).update(data).digest('hex') !== hex) {
    throw new DrpError('DRP_DIGEST_MISMATCH', `content does not match ${digest}`);
  }
}

function readFrom(data: Buffer) {
  return async (into: Buffer, position: number) => {
    const n = Math.max(0, Math.min(into.length, data.length - position));
    data.copy(into, 0, position, position + n);
    return into.subarray(0, n);
  };
}

export class MemoryStore implements ContentStore {
  readonly #entries = new Map<string, Entry>();
  #stored = 0;
  #evicted = 0;

  peek(digest: string) {
    const entry = this.#entries.get(digest);
    return entry ? { size: entry.data.length, meta: entry.meta } : undefined;
  }

  async open(digest: string): Promise<ContentHandle | undefined> {
    const entry = this.#entries.get(digest);
    if (!entry) return undefined;
    entry.pins += 1;
    let released = false;
    return {
      digest,
      size: entry.data.length,
      meta: entry.meta,
      read: readFrom(entry.data),
      release: async () => {
        if (!released) entry.pins -= 1;
        released = true;
      },
    };
  }

  async createWriter(digest: string): Promise<ContentWriter> {
    const chunks: Buffer[] = [];
    let whole: Buffer | undefined;
    let state: 'writing' | 'verified' | 'committed' | 'aborted' = 'writing';
    const bytes = () => {
      whole ??= Buffer.concat(chunks);
      return whole;
    };
    const writer: ContentWriter = {
      digest,
      get written() {
        return chunks.reduce((n, c) => n + c.length, 0);
      },
      write: async (more) => {
        if (state !== 'writing') throw new DrpError('DRP_INTERNAL', 'not writing');
        chunks.push(...more.map((c) => Buffer.from(c)));
        whole = undefined;
      },
      read: (into, position) => readFrom(bytes())(into, position),
      verify: async () => {
        if (state === 'aborted') throw new DrpError('DRP_INTERNAL', 'aborted');
        checked(digest, bytes());
        if (state === 'writing') state = 'verified';
      },
      commit: async (meta) => {
        await writer.verify();
        state = 'committed';
        this.#add(digest, bytes(), meta);
        return true;
      },
      abort: async () => {
        if (state !== 'committed') state = 'aborted';
      },
      close: async () => writer.abort(),
    };
    return writer;
  }

  async readBuffer(digest: string) {
    const entry = this.#entries.get(digest);
    return entry ? { data: entry.data, meta: entry.meta } : undefined;
  }

  async putBuffer(digest: string, data: Buffer, meta?: ContentMeta): Promise<void> {
    checked(digest, data);
    this.#add(digest, Buffer.from(data), meta);
  }

  async delete(digest: string): Promise<boolean> {
    const found = this.#entries.delete(digest);
    if (found) this.#evicted += 1;
    return found;
  }

  stats(): ContentStoreStats {
    let bytes = 0;
    let pinned = 0;
    for (const entry of this.#entries.values()) {
      bytes += entry.data.length;
      if (entry.pins > 0) pinned += 1;
    }
    const entries = this.#entries.size;
    return {
      entries,
      bytes,
      maxBytes: Number.MAX_SAFE_INTEGER,
      stored: this.#stored,
      evicted: this.#evicted,
      pinned,
    };
  }

  async close(): Promise<void> {}

  #add(digest: string, data: Buffer, meta: ContentMeta | undefined): void {
    const existing = this.#entries.get(digest);
    if (existing) {
      if (meta !== undefined) existing.meta = meta;
      return;
    }
    this.#entries.set(digest, { data, meta, pins: 0 });
    this.#stored += 1;
  }
}
