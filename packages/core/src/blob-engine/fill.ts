/**
 * One upstream GET of one blob, shared by every client that asks while it runs. Bytes go to a
 * store writer (which hashes them and owns the commit) and into a tail window; clients read
 * them through cursors at their own pace, with memory bounded.
 *
 * - The fill belongs to the engine, not to a client: clients may come and go; a fill that ends
 *   after every client left still verifies and commits.
 * - Nothing unverified looks complete: cursors withhold the last byte until the writer verified
 *   the digest; on a mismatch or truncation every cursor fails and nothing is stored.
 * - When the store refuses (disk full), the fill passes through: bytes reach clients through the
 *   window only (upstream is paused while the slowest client catches up), hashed here.
 *
 * Longer than the engine's other files (~300 lines) on purpose: every transition of the one
 * state enum is in this class, so no other file can move the fill to another state. What does
 * not touch the state lives beside it (write-queue, fill-bytes, tail-window, fill-support).
 */
import type { Hash } from 'node:crypto';
import createDebug from 'debug';
import { DrpError } from '../api/errors.js';
import type { ContentWriter } from '../store/content-store.js';
import { type BlobDigest, blobDigest, hasherFor } from '../store/digest.js';
import type { BlobCursor, CursorSource } from './cursor.js';
import { FillBytes } from './fill-bytes.js';
import { endOf, type FillHost, failureReason, passThroughHash } from './fill-support.js';
import { bodyStart } from './resume.js';
import type { FillFetch, FillInfo, FillSource, FillStart } from './types.js';
import { WriteQueue } from './write-queue.js';

const debug = createDebug('drp:flight');

/** Upstream is paused when this much is waiting to be written to the store. */
const WRITE_HIGH_WATER = 4 * 1024 * 1024;
/** Passing through, upstream is paused when the window holds this much not yet stored. */
const MEMORY_HIGH_WATER = 8 * 1024 * 1024;

/**
 * connecting -> spooling (-> passing) -> verifying -> committing -> done; or declined (upstream
 * answered something else), or failed from any state before committing.
 */
type FillState =
  | 'connecting'
  | 'declined'
  | 'spooling'
  | 'passing'
  | 'verifying'
  | 'committing'
  | 'done'
  | 'failed';

export class Fill implements CursorSource {
  readonly digest: string;
  readonly info: FillInfo;
  readonly started: Promise<FillStart>;
  readonly #d: BlobDigest;
  readonly #host: FillHost;
  #state: FillState = 'connecting';
  #error: Error | undefined;
  #response: FillSource | undefined;
  #size: number | undefined;
  #received = 0;
  /** Body bytes the writer already holds (a resumed fill answered with the whole blob). */
  #skip = 0;
  /** Only while passing through: the writer no longer sees the bytes. */
  #hash: Hash | undefined;
  readonly #bytes = new FillBytes();
  readonly #queue = new WriteQueue({
    write: (batch) => (this.#bytes.writer as ContentWriter).write(batch),
    open: () => this.#state === 'spooling',
    written: (batch) => this.#written(batch),
    refused: (error, batch) => this.#toPassing(error, batch),
  });
  readonly #startedAt = performance.now();

  constructor(host: FillHost, digest: string, info: FillInfo, fetch: FillFetch) {
    this.#host = host;
    this.digest = digest;
    this.#d = blobDigest(digest);
    this.info = info;
    this.started = this.#run(fetch);
    // Nobody may be waiting (every client left): never an unhandled rejection.
    this.started.catch(() => undefined);
  }

  get size(): number | undefined {
    return this.#size;
  }

  get upstreamMs(): number | undefined {
    return this.#response?.headersMs;
  }

  get available(): number {
    return this.#bytes.available;
  }

  get verified(): boolean {
    return this.#state === 'committing' || this.#state === 'done';
  }

  get error(): Error | undefined {
    return this.#error;
  }

  attach(cursor: BlobCursor): void {
    this.#bytes.cursors.add(cursor);
  }

  read(position: number, length: number, into: Buffer): Promise<Buffer> {
    return this.#bytes.read(position, length, into);
  }

  changed(): Promise<void> {
    if (this.#state === 'failed' || this.verified) return Promise.resolve();
    return this.#bytes.wait();
  }

  moved(): void {
    this.#trim();
  }

  detach(cursor: BlobCursor): void {
    this.#bytes.cursors.delete(cursor);
    if (this.#state === 'passing' && this.#bytes.cursors.size === 0) {
      // Nothing will be stored and nobody is listening: stop downloading.
      this.abort(new DrpError('DRP_CACHE_IO', 'pass-through fill abandoned by every client'));
      return;
    }
    this.#trim();
    this.#maybeClose();
  }

  /** Stops the fill; cursors see `error`. */
  abort(error: Error): void {
    this.#fail(error);
  }

  async #run(fetch: FillFetch): Promise<FillStart> {
    let response: FillSource;
    const resumeFrom = this.#host.resumeFrom ?? 0;
    try {
      response = await fetch(resumeFrom > 0 ? { offset: resumeFrom } : undefined);
    } catch (error) {
      this.#fail(error instanceof Error ? error : new Error(String(error)));
      throw error;
    }
    if (this.#state === 'failed') {
      response.abort();
      throw this.#error;
    }
    const body = bodyStart(response, resumeFrom);
    if (!body) {
      // Not the blob (401 challenge, 404, 429...): the leader relays it, nothing is cached.
      this.#state = 'declined';
      this.#error = new DrpError('DRP_UPSTREAM_PROTOCOL', `upstream answered ${response.status}`);
      this.#host.remove(this);
      this.#bytes.notify();
      return { streaming: false, response };
    }
    this.#response = response;
    this.#size = body.size;
    this.#received = body.received;
    this.#skip = body.skip;
    // Resumed: the writer holds the first `resumeFrom` bytes; the window continues after them.
    this.#bytes.window.startAt(resumeFrom);
    // Listening for the end first: the body may fail while the writer is being created.
    const ended = endOf(response.body);
    ended.catch(() => undefined);
    await this.#openWriter();
    // Aborted while the writer was being created (the cache closed).
    if (this.#error) throw this.#error;
    response.body.on('data', (chunk: Buffer) => this.#onData(chunk));
    void this.#finish(ended);
    return { streaming: true, size: this.#size };
  }

  async #openWriter(): Promise<void> {
    const { registry, name } = this.info;
    try {
      this.#bytes.writer = await this.#host.store.createWriter(this.digest, {
        registry,
        name,
        size: this.#size,
      });
      if (this.#state === 'connecting') this.#state = 'spooling';
    } catch (error) {
      debug('%s: no writer (%s); passing through', this.digest, (error as Error).message);
      if (this.#state === 'connecting') {
        this.#state = 'passing';
        this.#hash = hasherFor(this.#d);
      }
    }
    if (this.#state === 'failed') void this.#bytes.writer?.close();
  }

  #onData(chunk: Buffer): void {
    this.#received += chunk.length;
    if (this.#size !== undefined && this.#received > this.#size) {
      const error = new DrpError(
        'DRP_DIGEST_MISMATCH',
        `upstream sent more than the announced ${this.#size} bytes`,
      );
      this.#fail(error, 'mismatch');
      return;
    }
    if (this.#skip > 0) {
      const skipped = Math.min(this.#skip, chunk.length);
      this.#skip -= skipped;
      if (skipped === chunk.length) return;
      chunk = chunk.subarray(skipped);
    }
    if (this.#state === 'passing') {
      this.#passOn(chunk);
      return;
    }
    if (this.#state !== 'spooling') return;
    this.#queue.push(chunk);
    if (this.#queue.bytes > WRITE_HIGH_WATER) this.#response?.body.pause();
  }

  /** A batch is in the store: readers may have it. */
  #written(batch: readonly Buffer[]): void {
    for (const chunk of batch) this.#bytes.window.push(chunk);
    this.#trim();
    this.#bytes.notify();
    this.#response?.body.resume();
  }

  /** The store refused: hash what it has (it verified until now), go on in memory only. */
  async #toPassing(error: unknown, failed: Buffer[]): Promise<void> {
    debug('%s: store write failed (%s); passing through', this.digest, (error as Error).message);
    this.#response?.body.pause();
    const writer = this.#bytes.writer as ContentWriter;
    let hash: Hash;
    try {
      hash = await passThroughHash(this.#d, writer);
    } catch (readError) {
      this.#fail(readError as Error);
      return;
    }
    if (this.#state !== 'spooling') return;
    this.#state = 'passing';
    this.#hash = hash;
    void writer.abort();
    for (const chunk of [...failed, ...this.#queue.take()]) this.#passOn(chunk);
    if (this.#bytes.cursors.size === 0) {
      // Every client left while the store's bytes were hashed again: nobody to pass on to.
      this.abort(new DrpError('DRP_CACHE_IO', 'pass-through fill abandoned by every client'));
      return;
    }
    this.#trim();
  }

  #passOn(chunk: Buffer): void {
    this.#hash?.update(chunk);
    this.#bytes.window.push(chunk);
    if (this.#bytes.unstored >= MEMORY_HIGH_WATER) this.#response?.body.pause();
    this.#bytes.notify();
  }

  /** Frees what no cursor needs; resumes a pass-through that has room again. */
  #trim(): void {
    this.#bytes.trim();
    if (this.#state === 'passing' && this.#bytes.unstored < MEMORY_HIGH_WATER / 2) {
      this.#response?.body.resume();
    }
  }

  /** Upstream ended: check the length, let the store verify and commit. */
  async #finish(ended: Promise<void>): Promise<void> {
    try {
      await ended;
      await this.#queue.drain();
    } catch (error) {
      this.#fail(error as Error, 'truncated');
      return;
    }
    if (this.#state !== 'spooling' && this.#state !== 'passing') return;
    if (this.#size !== undefined && this.#received !== this.#size) {
      const message = `upstream sent ${this.#received} of ${this.#size} bytes of ${this.digest}`;
      this.#fail(new DrpError('DRP_UPSTREAM_TRUNCATED', message), 'truncated');
      return;
    }
    const passing = this.#state === 'passing';
    this.#state = 'verifying';
    try {
      await this.#verify(passing);
    } catch (error) {
      this.#fail(error as Error, 'mismatch');
      return;
    }
    this.#state = 'committing';
    this.#bytes.notify();
    debug('%s verified: %d bytes in %dms', this.digest, this.#received, performance.now() - this.#startedAt);
    if (!passing) {
      await this.#bytes.writer
        ?.commit(this.info.meta)
        .catch((error: Error) => debug('%s: commit: %s', this.digest, error.message));
    }
    this.#state = 'done';
    this.#host.remove(this);
    this.#maybeClose();
  }

  async #verify(passing: boolean): Promise<void> {
    if (!passing) return (this.#bytes.writer as ContentWriter).verify();
    if (this.#hash?.digest('hex') !== this.#d.hex) {
      throw new DrpError('DRP_DIGEST_MISMATCH', `upstream bytes do not match ${this.digest}`);
    }
  }

  #fail(error: Error, reason?: 'mismatch' | 'truncated'): void {
    const state = this.#state;
    if (state === 'failed' || state === 'declined' || state === 'committing' || state === 'done') return;
    this.#state = 'failed';
    this.#error = error;
    debug('%s failed: %s', this.digest, error.message);
    this.#response?.abort();
    this.#host.remove(this);
    const why = failureReason(state, reason);
    const { digest, info } = this;
    const size = this.#size ?? this.#received;
    if (why)
      this.#host.events?.publish('verify-failed', {
        digest,
        size,
        ...info,
        reason: why,
        received: this.#received,
      });
    this.#bytes.window.clear();
    this.#queue.take();
    void this.#bytes.writer?.abort();
    this.#bytes.notify();
    this.#maybeClose();
  }

  /** Frees the writer once the fill is over and no cursor reads its bytes any more. */
  #maybeClose(): void {
    if (this.#state === 'done' || this.#state === 'failed') this.#bytes.closeWriterIfUnread();
  }
}
