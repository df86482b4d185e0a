/**
 * Following a fill another process leads: its bytes come from the leader's spool file (through
 * the store's RemoteFill), are hashed here, and reach this process's cursors at their own pace.
 * Like a fill, nothing unverified looks complete: the last byte waits for this process's own
 * digest check. When the leader goes stale (killed), this follower tries to take the fill over:
 * the store copies the dead leader's bytes into a new spool and a fill of this process
 * continues upstream from there (`FollowHost.lead`), while this keeps tailing the new spool.
 *
 * Polling, not fs.watch (unreliable on NFS): the spool is read again every 20-50 ms while
 * cursors wait (up to 250 ms when none does), the lease every 500 ms.
 */
import { DrpError } from '../api/errors.js';
import type { CacheEvents } from '../events.js';
import type { ContentMeta, FillLease, RemoteFill, RemoteState } from '../store/content-store.js';
import { type BlobDigest, hasherFor } from '../store/digest.js';
import type { BlobCursor, CursorSource } from './cursor.js';
import { TailWindow } from './tail-window.js';
import type { FillInfo } from './types.js';

const READ_BYTES = 1024 * 1024;
/** Reads smaller than this are copied out, so the window never pins mostly empty 1 MiB buffers. */
const COPY_BELOW = 256 * 1024;
const RECENT_BYTES = 8 * 1024 * 1024;
const POLL_MIN_MS = 20;
const POLL_WAITING_MS = 50;
const POLL_IDLE_MS = 250;
const LEASE_POLL_MS = 500;
/**
 * No lease and nothing committed: the fill ended, unless a takeover is between breaking the
 * stale lease and creating its own (milliseconds). Only this long an absence counts.
 */
const ENDED_GRACE_MS = 500;

export type FollowStart =
  | { readonly kind: 'streaming'; readonly size: number | undefined; readonly meta: ContentMeta | undefined }
  /** The leader died before streaming: this process leads with `lease`. */
  | { readonly kind: 'lead'; readonly lease: FillLease }
  /** The leader's fill ended without the blob (declined, failed) before a byte: claim again. */
  | { readonly kind: 'again' };

export interface FollowHost {
  /** Runs a fill of this process with `lease` (a takeover after bytes were streamed). */
  lead(lease: FillLease): void;
  /** The follow is over (verified, failed or abandoned): no more joiners. */
  ended(): void;
  readonly events: CacheEvents | undefined;
}

export class RemoteFillSource implements CursorSource {
  readonly started: Promise<FollowStart>;
  readonly #remote: RemoteFill;
  readonly #d: BlobDigest;
  readonly #info: FillInfo;
  readonly #host: FollowHost;
  readonly #hash;
  readonly #window = new TailWindow();
  readonly #cursors = new Set<BlobCursor>();
  #waiters: (() => void)[] = [];
  #size: number | undefined;
  #meta: ContentMeta | undefined;
  #hashed = 0;
  #verified = false;
  #error: Error | undefined;
  /** The leader's fill ended (no more bytes will come). */
  #ended = false;
  #stopped = false;
  #spare: Buffer | undefined;
  #absentSince: number | undefined;

  constructor(remote: RemoteFill, d: BlobDigest, info: FillInfo, host: FollowHost) {
    this.#remote = remote;
    this.#d = d;
    this.#info = info;
    this.#host = host;
    this.#hash = hasherFor(d);
    this.started = this.#start();
    this.started.catch(() => undefined);
  }

  get size(): number | undefined {
    return this.#size;
  }

  /** The leader's metadata (its auth class decides who may join), when the lease told it. */
  get meta(): ContentMeta | undefined {
    return this.#meta;
  }

  get available(): number {
    return this.#hashed;
  }

  get verified(): boolean {
    return this.#verified;
  }

  get error(): Error | undefined {
    return this.#error;
  }

  attach(cursor: BlobCursor): void {
    this.#cursors.add(cursor);
  }

  async read(position: number, length: number, into: Buffer): Promise<Buffer> {
    const held = this.#window.copy(position, length, into);
    if (held) return held;
    const chunk = await this.#remote.read(into.subarray(0, Math.min(length, into.length)), position);
    if (chunk.length === 0) throw new DrpError('DRP_CACHE_IO', 'followed bytes are missing');
    return chunk;
  }

  changed(): Promise<void> {
    if (this.#error || this.#verified) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  moved(): void {
    this.#trim();
  }

  detach(cursor: BlobCursor): void {
    this.#cursors.delete(cursor);
    // Nothing to commit here: with nobody reading, following is pointless.
    if (this.#cursors.size === 0) this.stop();
    else this.#trim();
  }

  /** Stops following (the cache closed, or every client left). */
  stop(error?: Error): void {
    if (error && !this.#verified) this.#fail(error);
    if (this.#stopped) return;
    this.#stopped = true;
    this.#host.ended();
    void this.#remote.close();
  }

  async #start(): Promise<FollowStart> {
    let delay = POLL_MIN_MS;
    for (;;) {
      if (this.#stopped) throw this.#error ?? new DrpError('DRP_INTERNAL', 'the cache was closed');
      const state = await this.#remote.poll();
      if (state.kind === 'streaming' || (state.kind === 'ended' && state.committed)) {
        this.#size = state.size;
        this.#meta = state.meta;
        this.#ended = state.kind === 'ended';
        void this.#pump();
        return { kind: 'streaming', size: this.#size, meta: this.#meta };
      }
      if (state.kind === 'stale') {
        const lease = await this.#remote.takeOver();
        if (lease) {
          await this.#remote.close();
          return { kind: 'lead', lease };
        }
      } else if (state.kind === 'ended' && this.#absentFor() >= ENDED_GRACE_MS) {
        await this.#remote.close();
        return { kind: 'again' };
      }
      await sleep(delay);
      delay = Math.min(delay * 1.5, POLL_IDLE_MS);
    }
  }

  /** Reads the followed file as it grows, hashing every byte once. */
  async #pump(): Promise<void> {
    let delay = POLL_MIN_MS;
    let polled = performance.now();
    try {
      while (!this.#stopped && !this.#verified && !this.#error) {
        if (await this.#readMore()) {
          delay = POLL_MIN_MS;
          continue;
        }
        if (this.#ended) {
          this.#finish();
          return;
        }
        if (performance.now() - polled >= LEASE_POLL_MS || this.#absentSince !== undefined) {
          polled = performance.now();
          await this.#onState(await this.#remote.poll());
          if (this.#ended) continue; // read what the end left (from the committed file)
        }
        await sleep(delay);
        delay = Math.min(delay * 1.5, this.#cursors.size > 0 ? POLL_WAITING_MS : POLL_IDLE_MS);
      }
    } catch (error) {
      this.#fail(error instanceof Error ? error : new Error(String(error)));
    }
  }

  /** Reads and hashes the next bytes; false when there are none yet. */
  async #readMore(): Promise<boolean> {
    const buffer = this.#spare ?? Buffer.allocUnsafe(READ_BYTES);
    this.#spare = buffer;
    const got = await this.#remote.read(buffer, this.#hashed);
    if (got.length === 0 || this.#stopped) return false;
    const size = this.#size;
    if (size !== undefined && this.#hashed + got.length > size) {
      throw new DrpError(
        'DRP_DIGEST_MISMATCH',
        `the followed fill has more than the announced ${size} bytes`,
      );
    }
    let chunk = got;
    if (got.length < COPY_BELOW) chunk = Buffer.from(got);
    else this.#spare = undefined;
    this.#hash.update(chunk);
    this.#window.push(chunk);
    this.#hashed += chunk.length;
    this.#trim();
    if (size !== undefined && this.#hashed === size) this.#finish();
    else this.#notify();
    return true;
  }

  async #onState(state: RemoteState): Promise<void> {
    if (state.kind !== 'ended' || state.committed) this.#absentSince = undefined;
    switch (state.kind) {
      case 'ended':
        if (state.committed) {
          this.#size ??= state.size;
          this.#ended = true;
        } else if (this.#absentFor() >= ENDED_GRACE_MS) {
          this.#ended = true;
        }
        return;
      case 'stale': {
        const lease = await this.#remote.takeOver();
        if (lease) this.#host.lead(lease);
        return;
      }
      default:
        return;
    }
  }

  #absentFor(): number {
    const now = performance.now();
    this.#absentSince ??= now;
    return now - this.#absentSince;
  }

  /** Every byte is in: this process's own digest check decides. */
  #finish(): void {
    const size = this.#size;
    if (size !== undefined && this.#hashed < size) {
      const message = `the followed fill ended at ${this.#hashed} of ${size} bytes`;
      this.#fail(new DrpError('DRP_UPSTREAM_TRUNCATED', message), 'truncated');
      return;
    }
    if (this.#hash.digest('hex') !== this.#d.hex) {
      this.#fail(
        new DrpError('DRP_DIGEST_MISMATCH', `followed bytes do not match ${this.#d.digest}`),
        'mismatch',
      );
      return;
    }
    this.#verified = true;
    this.#notify();
    this.#host.ended();
    // Cursors behind the window still read the file: it is closed when the last one detaches.
    if (this.#cursors.size === 0) this.stop();
  }

  #fail(error: Error, reason?: 'mismatch' | 'truncated'): void {
    if (this.#error || this.#verified) return;
    this.#error = error;
    if (reason) {
      const { digest } = this.#d;
      const size = this.#size ?? this.#hashed;
      const received = this.#hashed;
      this.#host.events?.publish('verify-failed', { digest, size, ...this.#info, reason, received });
    }
    this.#window.clear();
    this.#notify();
    this.stop();
  }

  #notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  /** Bytes stay on disk: the window keeps only what a cursor has not read and the newest. */
  #trim(): void {
    let lowest = Number.POSITIVE_INFINITY;
    for (const cursor of this.#cursors) lowest = Math.min(lowest, cursor.position);
    this.#window.dropWhile((end, bytes) => end <= lowest || bytes > RECENT_BYTES);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
