// A ContentStore of your own: content in memory, least recently used entries dropped first
// when over `maxBytes`. It passes `contentStoreConformance` (`@drp/core/testing`) like the
// default on-disk store does; examples/custom-store.ts runs the cache on it.
import { createHash } from 'node:crypto';
import type { ContentHandle, ContentMeta, ContentStore, ContentWriter } from '@drp/core';
import { DrpError } from '@drp/core';

interface Entry {
  readonly data: Buffer;
  meta: ContentMeta | undefined;
  pins: number;
}

const readerOf = (data: () => Buffer) => async (into: Buffer, at: number) =>
  into.subarray(0, data().copy(into, 0, Math.min(at, data().length)));

function checked(digest: string, data: Buffer): Buffer {
  const [algorithm = '', hex] = digest.split(':');
  if (createHash(algorithm).update(data).digest('hex') === hex) return data;
  throw new DrpError('DRP_DIGEST_MISMATCH', `content does not match ${digest}`);
}

export class LruStore implements ContentStore {
  readonly #entries = new Map<string, Entry>(); // least recently used first
  readonly #counts = { bytes: 0, stored: 0, evicted: 0 };
  constructor(readonly maxBytes: number) {}

  peek(digest: string) {
    const entry = this.#entries.get(digest);
    return entry && { size: entry.data.length, meta: entry.meta };
  }
  async open(digest: string): Promise<ContentHandle | undefined> {
    const entry = this.#use(digest);
    if (!entry) return undefined;
    entry.pins += 1;
    let pinned = true;
    const release = async () => {
      if (pinned) entry.pins -= 1;
      pinned = false;
    };
    return { digest, size: entry.data.length, meta: entry.meta, read: readerOf(() => entry.data), release };
  }
  async createWriter(digest: string): Promise<ContentWriter> {
    let data = Buffer.alloc(0);
    let ended = false; // committed or aborted: never stored (again)
    const writer: ContentWriter = {
      digest,
      get written() {
        return data.length;
      },
      write: async (chunks) => {
        data = Buffer.concat([data, ...chunks]);
      },
      read: readerOf(() => data),
      verify: async () => void checked(digest, data),
      commit: async (meta) => {
        await writer.verify();
        if (ended) return true;
        ended = true;
        return this.#put(digest, data, meta);
      },
      abort: async () => {
        ended = true;
      },
      close: () => writer.abort(),
    };
    return writer;
  }
  async readBuffer(digest: string) {
    return this.#use(digest);
  }
  async putBuffer(digest: string, data: Buffer, meta?: ContentMeta) {
    this.#put(digest, checked(digest, Buffer.from(data)), meta);
  }
  async delete(digest: string) {
    const entry = this.#entries.get(digest);
    if (!entry) return false;
    this.#entries.delete(digest);
    this.#counts.bytes -= entry.data.length;
    this.#counts.evicted += 1;
    return true;
  }
  stats() {
    const pinned = [...this.#entries.values()].filter((entry) => entry.pins > 0).length;
    return { entries: this.#entries.size, maxBytes: this.maxBytes, pinned, ...this.#counts };
  }
  async close() {}

  #use(digest: string): Entry | undefined {
    const entry = this.#entries.get(digest);
    if (entry) this.#entries.delete(digest);
    if (entry) this.#entries.set(digest, entry); // now the most recently used
    return entry;
  }
  #put(digest: string, data: Buffer, meta: ContentMeta | undefined): boolean {
    const existing = this.#use(digest);
    if (existing) existing.meta = meta ?? existing.meta;
    if (existing || data.length > this.maxBytes) return existing !== undefined;
    this.#entries.set(digest, { data, meta, pins: 0 });
    this.#counts.bytes += data.length;
    this.#counts.stored += 1;
    for (const [old, entry] of this.#entries) {
      if (this.#counts.bytes > this.maxBytes && entry.pins === 0) void this.delete(old);
    }
    return true;
  }
}
