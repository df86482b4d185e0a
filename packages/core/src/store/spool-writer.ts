/**
 * The default store's writer: bytes go to a spool file (same file system as the content, so the
 * commit is a rename), hashed as they are written. Nothing is visible until `commit`, which
 * verifies the digest, syncs the file and hands it to the store.
 */
import type { Hash } from 'node:crypto';
import { type FileHandle, unlink } from 'node:fs/promises';
import createDebug from 'debug';
import { DrpError } from '../api/errors.js';
import type { ContentMeta, ContentWriter } from './content-store.js';
import { type BlobDigest, hasherFor } from './digest.js';

const debug = createDebug('drp:store');

/** What the writer needs of its store. */
export interface SpoolTarget {
  /** Moves a verified, synced spool file into place (see BlobStore.commitSpool). */
  commitSpool(digest: string, path: string, size: number, meta?: ContentMeta): Promise<boolean>;
  /** Reports that the entry will not be stored, and why (`store-skipped`). */
  skipped(digest: string, reason: string): void;
}

/** writing -> verified -> committed; or mismatch / refused (write failed) / aborted. */
type WriterState = 'writing' | 'verified' | 'committed' | 'mismatch' | 'refused' | 'aborted';

export class SpoolWriter implements ContentWriter {
  readonly digest: string;
  readonly #d: BlobDigest;
  readonly #target: SpoolTarget;
  readonly #path: string;
  #file: FileHandle | undefined;
  readonly #hash: Hash;
  #written = 0;
  #state: WriterState = 'writing';

  constructor(target: SpoolTarget, d: BlobDigest, path: string, file: FileHandle) {
    this.digest = d.digest;
    this.#d = d;
    this.#target = target;
    this.#path = path;
    this.#file = file;
    this.#hash = hasherFor(d);
  }

  get written(): number {
    return this.#written;
  }

  async write(chunks: readonly Buffer[]): Promise<void> {
    const file = this.#file;
    if (this.#state !== 'writing' || !file) throw new DrpError('DRP_INTERNAL', 'the writer is not writing');
    let total = 0;
    for (const chunk of chunks) total += chunk.length;
    try {
      // Hashing runs here while the first write is in the thread pool.
      let pending = file.writev(chunks as Buffer[], this.#written);
      for (const chunk of chunks) this.#hash.update(chunk);
      let done = 0;
      for (;;) {
        const { bytesWritten } = await pending;
        if (bytesWritten <= 0) throw new DrpError('DRP_CACHE_IO', 'spool write made no progress');
        done += bytesWritten;
        if (done >= total) break;
        pending = file.writev([Buffer.concat(chunks).subarray(done)], this.#written + done);
      }
    } catch (error) {
      this.#state = 'refused';
      this.#target.skipped(this.digest, (error as NodeJS.ErrnoException).code ?? 'spool write failed');
      throw error;
    }
    this.#written += total;
  }

  readonly read = async (into: Buffer, position: number): Promise<Buffer> => {
    const file = this.#file;
    if (!file) throw new DrpError('DRP_INTERNAL', 'the writer is closed');
    const n = Math.min(into.length, this.#written - position);
    if (n <= 0) return into.subarray(0, 0);
    const { bytesRead } = await file.read(into, 0, n, position);
    return into.subarray(0, bytesRead);
  };

  async verify(): Promise<void> {
    if (this.#state === 'verified' || this.#state === 'committed') return;
    if (this.#state !== 'writing')
      throw new DrpError('DRP_INTERNAL', `cannot verify a ${this.#state} writer`);
    if (this.#hash.digest('hex') !== this.#d.hex) {
      this.#state = 'mismatch';
      await unlink(this.#path).catch(() => undefined);
      throw new DrpError('DRP_DIGEST_MISMATCH', `content does not match ${this.digest}`);
    }
    this.#state = 'verified';
  }

  async commit(meta?: ContentMeta): Promise<boolean> {
    await this.verify();
    if (this.#state === 'committed') return true;
    const file = this.#file;
    if (!file) return false;
    try {
      // Durable before visible: the rename must never expose a file whose blocks are not on disk.
      await file.datasync();
    } catch (error) {
      debug('%s: sync failed: %s', this.digest, (error as Error).message);
      await this.abort();
      this.#target.skipped(this.digest, (error as NodeJS.ErrnoException).code ?? 'commit failed');
      return false;
    }
    this.#state = 'committed';
    return this.#target.commitSpool(this.digest, this.#path, this.#written, meta);
  }

  async abort(): Promise<void> {
    if (this.#state === 'committed' || this.#state === 'aborted') return;
    this.#state = 'aborted';
    await unlink(this.#path).catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.abort();
    const file = this.#file;
    this.#file = undefined;
    await file?.close().catch(() => undefined);
  }
}
