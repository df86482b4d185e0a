/**
 * Single-flight fills: however many clients ask for one uncached blob at once, one upstream GET
 * is made. Its bytes are hashed as they arrive and written to a spool file; every waiting client
 * tails that file through its own reader (reading what is there, waiting for more), so each
 * gets bytes as they arrive, at its own pace, with memory bounded per client.
 *
 * - The fill belongs to the cache, not to a client: clients may come and go; a fill that ends
 *   after every client left still verifies and commits.
 * - Nothing unverified looks complete: a reader withholds the last byte of its response until
 *   the whole blob has verified; on a digest mismatch or truncation every reader is destroyed
 *   (the client sees a cut connection, never a clean end) and nothing is stored.
 * - A write error on the spool (ENOSPC, EDQUOT, EIO) turns the fill into a pass-through: the
 *   bytes still reach the clients through a bounded in-memory window (upstream is paused while
 *   the slowest client catches up), and nothing is stored.
 */
import type { Hash } from 'node:crypto';
import { type FileHandle, open, unlink } from 'node:fs/promises';
import { Readable } from 'node:stream';
import createDebug from 'debug';
import { DrpError } from './api/errors.js';
import type { CacheEvents } from './events.js';
import type { BlobMeta, BlobStore } from './store/blob-store.js';
import { type BlobDigest, blobDigest, hasherFor } from './store/digest.js';
import type { UpstreamResponse } from './upstream/client.js';

const debug = createDebug('drp:flight');

/** Upstream is paused when this much is waiting to be written to the spool. */
const WRITE_HIGH_WATER = 4 * 1024 * 1024;
/** Recently written spool bytes kept in memory for readers that keep pace. */
const RECENT_BYTES = 8 * 1024 * 1024;
/** In pass-through mode, upstream is paused when the memory window holds this much. */
const MEMORY_HIGH_WATER = 8 * 1024 * 1024;

/** How a flight started: streaming, or the upstream answered something that is not the blob. */
export type FlightStart =
  | { readonly streaming: true; readonly size: number | undefined }
  | { readonly streaming: false; readonly response: UpstreamResponse };

export interface FlightInfo {
  readonly registry?: string;
  readonly name?: string;
  /** Metadata the blob is committed with (its kind and the auth class that fetched it). */
  readonly meta?: BlobMeta;
}

export interface FlightStats {
  /** Upstream fetches started since the cache was created. */
  readonly fills: number;
  /** Fills running now. */
  readonly active: number;
}

type State = 'connecting' | 'filling' | 'verified' | 'failed';

export class Flight {
  readonly digest: string;
  readonly #d: BlobDigest;
  readonly #table: FlightTable;
  readonly #info: FlightInfo;
  readonly #started: Promise<FlightStart>;
  #state: State = 'connecting';
  #error: Error | undefined;
  #size: number | undefined;
  #response: UpstreamResponse | undefined;
  readonly #hash: Hash;
  #received = 0;
  /** Bytes readable by readers: in the spool file, then in the memory window. */
  #written = 0;
  /** Bytes in the spool file. */
  #fileEnd = 0;
  #file: FileHandle | undefined;
  readonly #path: string;
  #queue: Buffer[] = [];
  #queued = 0;
  #writing = false;
  #ended = false;
  #paused = false;
  #degraded = false;
  #memory: { offset: number; data: Buffer }[] = [];
  /** The last bytes written to the spool, still in memory. */
  #recent: { offset: number; data: Buffer }[] = [];
  #recentBytes = 0;
  #memoryBytes = 0;
  readonly #readers = new Set<FlightCursor>();
  #waiters: (() => void)[] = [];
  #finishing = false;
  #settled = false;
  readonly #startedAt = performance.now();

  /** Who started the fill, for what registry: joiners decide on access with it. */
  get info(): FlightInfo {
    return this.#info;
  }

  constructor(table: FlightTable, digest: string, info: FlightInfo, start: () => Promise<UpstreamResponse>) {
    this.digest = digest;
    this.#d = blobDigest(digest);
    this.#table = table;
    this.#info = info;
    this.#hash = hasherFor(this.#d);
    this.#path = table.store.spoolPath();
    this.#started = this.#run(start);
    // Nobody may be waiting (every client left): never an unhandled rejection.
    this.#started.catch(() => undefined);
  }

  /** Resolves when upstream answered: streaming, or declined with the response to relay. */
  get started(): Promise<FlightStart> {
    return this.#started;
  }

  /** Size announced by upstream, when it sent a Content-Length. */
  get size(): number | undefined {
    return this.#size;
  }

  /** Milliseconds upstream took to answer with headers. */
  get upstreamMs(): number | undefined {
    return this.#response?.headersMs;
  }

  get verified(): boolean {
    return this.#state === 'verified';
  }

  get error(): Error | undefined {
    return this.#error;
  }

  get written(): number {
    return this.#written;
  }

  /** A cursor over bytes `[start, end)` of the blob (end defaults to the whole blob). */
  cursor(start = 0, end?: number): FlightCursor {
    const cursor = new FlightCursor(this, start, end);
    this.#readers.add(cursor);
    return cursor;
  }

  /** A stream of bytes `[start, end)` (for callers that want a Readable; allocates per chunk). */
  createReader(start = 0, end?: number): Readable {
    const cursor = this.cursor(start, end);
    return Readable.from(
      (async function* () {
        try {
          for (;;) {
            const chunk = await cursor.next(Buffer.allocUnsafe(256 * 1024));
            if (chunk === null) return;
            yield chunk;
          }
        } finally {
          cursor.close();
        }
      })(),
      { objectMode: false },
    );
  }

  /**
   * Reads up to `length` bytes at `position` into `into` (file) or returns a slice of the
   * pass-through window; the caller checked they are there.
   */
  async read(position: number, length: number, into: Buffer): Promise<Buffer> {
    const recentStart = this.#recent[0]?.offset ?? Number.POSITIVE_INFINITY;
    if (position >= recentStart && position < this.#fileEnd) {
      const n = Math.min(length, this.#fileEnd - position, into.length);
      let copied = 0;
      for (const chunk of this.#recent) {
        if (copied >= n) break;
        const chunkEnd = chunk.offset + chunk.data.length;
        const at = position + copied;
        if (at >= chunkEnd) continue;
        copied += chunk.data.copy(
          into,
          copied,
          at - chunk.offset,
          Math.min(chunk.data.length, at - chunk.offset + n - copied),
        );
      }
      return into.subarray(0, copied);
    }
    if (position < this.#fileEnd && this.#file) {
      const n = Math.min(length, this.#fileEnd - position, into.length);
      const { bytesRead } = await this.#file.read(into, 0, n, position);
      if (bytesRead === 0) throw new DrpError('DRP_CACHE_IO', 'spool file shorter than written');
      return into.subarray(0, bytesRead);
    }
    for (const chunk of this.#memory) {
      if (position >= chunk.offset && position < chunk.offset + chunk.data.length) {
        const from = position - chunk.offset;
        return chunk.data.subarray(from, Math.min(chunk.data.length, from + length));
      }
    }
    throw new DrpError('DRP_CACHE_IO', 'bytes of a pass-through fill are no longer available');
  }

  /** Resolves on the next progress (bytes written, verified, failed). */
  changed(): Promise<void> {
    if (this.#state === 'failed' || this.#state === 'verified') return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Called by readers after they advance or go away. */
  readerMoved(): void {
    if (this.#degraded) this.#trimMemory();
  }

  readerGone(reader: FlightCursor): void {
    this.#readers.delete(reader);
    if (this.#degraded && this.#readers.size === 0 && this.#state === 'filling') {
      // Nothing will be stored and nobody is listening: stop downloading.
      this.#fail(new DrpError('DRP_CACHE_IO', 'pass-through fill abandoned by every client'));
      return;
    }
    if (this.#degraded) this.#trimMemory();
    this.#maybeClose();
  }

  /** Stops the fill; readers see `error`. */
  abort(error: Error): void {
    this.#fail(error);
  }

  // --- the fill ----------------------------------------------------------------------------

  async #run(start: () => Promise<UpstreamResponse>): Promise<FlightStart> {
    let response: UpstreamResponse;
    try {
      response = await start();
    } catch (error) {
      this.#fail(error instanceof Error ? error : new Error(String(error)));
      throw error;
    }
    if (this.#state === 'failed') {
      response.abort();
      throw this.#error ?? new DrpError('DRP_INTERNAL', 'fill aborted');
    }
    if (response.status !== 200) {
      // Not the blob (401 challenge, 404, 429...): the leader relays it, nothing is cached.
      this.#state = 'failed';
      this.#error = new DrpError('DRP_UPSTREAM_PROTOCOL', `upstream answered ${response.status}`);
      this.#table.remove(this);
      this.#notify();
      return { streaming: false, response };
    }
    this.#response = response;
    const length = response.headers['content-length'];
    if (length !== undefined && /^\d+$/.test(length)) this.#size = Number(length);
    const body = response.body;
    // Error and close listeners first: the body may fail while the spool is being opened.
    this.#state = 'filling';
    body.once('error', (error: Error) => this.#fail(error, 'truncated'));
    body.once('close', () => {
      if (!this.#ended)
        this.#fail(new DrpError('DRP_UPSTREAM_TRUNCATED', 'upstream closed early'), 'truncated');
    });
    try {
      this.#file = await open(this.#path, 'w+', 0o600);
    } catch (error) {
      this.#degrade(error);
    }
    if (this.#state !== 'filling') {
      // Failed (or aborted) while the spool was being opened: nothing to stream.
      this.#maybeClose();
      await unlink(this.#path).catch(() => undefined);
      throw this.#error ?? new DrpError('DRP_INTERNAL', 'fill aborted');
    }
    body.on('data', (chunk: Buffer) => this.#onData(chunk));
    body.once('end', () => {
      this.#ended = true;
      debug('%s: upstream done in %dms', this.digest, Math.round(performance.now() - this.#startedAt));
      this.#kick();
    });
    return { streaming: true, size: this.#size };
  }

  #onData(chunk: Buffer): void {
    if (this.#state !== 'filling') return;
    this.#hash.update(chunk);
    this.#received += chunk.length;
    if (this.#size !== undefined && this.#received > this.#size) {
      this.#fail(
        new DrpError('DRP_DIGEST_MISMATCH', `upstream sent more than the announced ${this.#size} bytes`),
        'mismatch',
      );
      return;
    }
    if (this.#degraded) {
      this.#pushMemory(chunk);
      return;
    }
    this.#queue.push(chunk);
    this.#queued += chunk.length;
    if (this.#queued > WRITE_HIGH_WATER) this.#pause();
    this.#kick();
  }

  #kick(): void {
    if (this.#writing || this.#state !== 'filling') return;
    if (this.#degraded && this.#queue.length > 0) {
      const queued = this.#queue;
      this.#queue = [];
      this.#queued = 0;
      for (const chunk of queued) this.#pushMemory(chunk);
    }
    if (this.#queue.length === 0) {
      if (this.#ended) void this.#finish();
      return;
    }
    const batch = this.#queue;
    const bytes = this.#queued;
    this.#queue = [];
    this.#queued = 0;
    this.#writing = true;
    void this.#writeBatch(batch, bytes).then(() => {
      this.#writing = false;
      if (!this.#degraded || this.#memoryBytes < MEMORY_HIGH_WATER) this.#resume();
      this.#kick();
    });
  }

  async #writeBatch(batch: Buffer[], bytes: number): Promise<void> {
    const file = this.#file;
    if (!file) return;
    try {
      let done = 0;
      let buffers = batch;
      while (done < bytes) {
        const { bytesWritten } = await file.writev(buffers, this.#fileEnd + done);
        if (bytesWritten <= 0) throw new DrpError('DRP_CACHE_IO', 'spool write made no progress');
        done += bytesWritten;
        if (done < bytes) buffers = [Buffer.concat(batch).subarray(done)];
      }
      // Keep what was just written in memory too: readers keeping pace copy it from here
      // instead of reading the spool back (no syscall, no thread-pool round trip).
      let offset = this.#fileEnd;
      for (const chunk of batch) {
        this.#recent.push({ offset, data: chunk });
        this.#recentBytes += chunk.length;
        offset += chunk.length;
      }
      while (this.#recentBytes > RECENT_BYTES && this.#recent.length > 1) {
        const dropped = this.#recent.shift();
        if (dropped) this.#recentBytes -= dropped.data.length;
      }
      this.#fileEnd += bytes;
      this.#written = this.#fileEnd;
      this.#notify();
    } catch (error) {
      if (this.#state !== 'filling') return;
      this.#degrade(error);
      for (const chunk of batch) this.#pushMemory(chunk);
    }
  }

  /** The spool cannot take more: go on as a pass-through, store nothing. */
  #degrade(error: unknown): void {
    if (this.#degraded) return;
    this.#degraded = true;
    const code = (error as NodeJS.ErrnoException).code ?? 'spool write failed';
    debug('%s: spool failed (%s); passing through without caching', this.digest, code);
    this.#table.remove(this);
    this.#table.events?.publish('store-skipped', {
      digest: this.digest,
      size: this.#size ?? 0,
      ...this.#info,
      reason: code,
    });
  }

  #pushMemory(chunk: Buffer): void {
    this.#memory.push({ offset: this.#written, data: chunk });
    this.#memoryBytes += chunk.length;
    this.#written += chunk.length;
    if (this.#memoryBytes >= MEMORY_HIGH_WATER) this.#pause();
    this.#notify();
  }

  #trimMemory(): void {
    let lowest = Number.POSITIVE_INFINITY;
    for (const reader of this.#readers) lowest = Math.min(lowest, reader.position);
    while (this.#memory.length > 0) {
      const first = this.#memory[0];
      if (!first || first.offset + first.data.length > lowest) break;
      this.#memory.shift();
      this.#memoryBytes -= first.data.length;
    }
    if (this.#memoryBytes < MEMORY_HIGH_WATER / 2 && !this.#writing) this.#resume();
  }

  #pause(): void {
    if (this.#paused || !this.#response) return;
    this.#paused = true;
    this.#response.body.pause();
  }

  #resume(): void {
    if (!this.#paused || !this.#response) return;
    this.#paused = false;
    this.#response.body.resume();
  }

  async #finish(): Promise<void> {
    if (this.#finishing) return;
    this.#finishing = true;
    if (this.#size !== undefined && this.#received !== this.#size) {
      this.#fail(
        new DrpError(
          'DRP_UPSTREAM_TRUNCATED',
          `upstream sent ${this.#received} of ${this.#size} bytes of ${this.digest}`,
        ),
        'truncated',
      );
      return;
    }
    const actual = this.#hash.digest('hex');
    if (actual !== this.#d.hex) {
      this.#fail(
        new DrpError('DRP_DIGEST_MISMATCH', `upstream bytes do not match ${this.digest}`),
        'mismatch',
      );
      return;
    }
    this.#state = 'verified';
    this.#notify();
    debug(
      '%s verified: %d bytes in %dms',
      this.digest,
      this.#received,
      Math.round(performance.now() - this.#startedAt),
    );
    if (!this.#degraded && this.#file) {
      try {
        // Durable before visible: the rename must never expose a file whose blocks are not on disk.
        await this.#file.datasync();
        await this.#table.store.commitSpool(this.digest, this.#path, this.#received, this.#info.meta);
      } catch (error) {
        debug('%s: commit failed: %s', this.digest, (error as Error).message);
        await unlink(this.#path).catch(() => undefined);
        this.#table.events?.publish('store-skipped', {
          digest: this.digest,
          size: this.#received,
          ...this.#info,
          reason: (error as NodeJS.ErrnoException).code ?? 'commit failed',
        });
      }
    } else {
      await unlink(this.#path).catch(() => undefined);
    }
    this.#settled = true;
    this.#table.remove(this);
    this.#maybeClose();
  }

  #fail(error: Error, reason?: 'mismatch' | 'truncated'): void {
    if (this.#state === 'failed' || this.#state === 'verified') return;
    const wasFilling = this.#state === 'filling';
    this.#state = 'failed';
    this.#error = error;
    debug('%s failed: %s', this.digest, error.message);
    this.#response?.abort();
    this.#table.remove(this);
    if (reason && wasFilling) {
      this.#table.events?.publish('verify-failed', {
        digest: this.digest,
        size: this.#size ?? this.#received,
        ...this.#info,
        reason,
        received: this.#received,
      });
    }
    this.#memory = [];
    this.#memoryBytes = 0;
    this.#recent = [];
    this.#recentBytes = 0;
    this.#settled = true;
    this.#notify();
    void unlink(this.#path).catch(() => undefined);
    this.#maybeClose();
  }

  #notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  #maybeClose(): void {
    if (!this.#settled || this.#readers.size > 0 || !this.#file) return;
    const file = this.#file;
    this.#file = undefined;
    void file.close().catch(() => undefined);
  }
}

/**
 * One client's view of a flight: bytes `[start, end)`, read from the spool as they arrive. Its
 * `next` is a ChunkSource (http/send.ts): it fills the caller's reused buffer, waiting for more
 * bytes when it has caught up with the fill.
 */
export class FlightCursor {
  readonly #flight: Flight;
  #position: number;
  readonly #end: number | undefined;
  #closed = false;

  constructor(flight: Flight, start: number, end: number | undefined) {
    this.#flight = flight;
    this.#position = start;
    this.#end = end ?? flight.size;
  }

  get position(): number {
    return this.#position;
  }

  /** The next bytes (into `into`, or a slice of the pass-through window); null at the end. */
  readonly next = async (into: Buffer): Promise<Buffer | null> => {
    const flight = this.#flight;
    for (;;) {
      if (this.#closed) throw new DrpError('DRP_INTERNAL', 'reader closed');
      const end = this.#end;
      if (end !== undefined && this.#position >= end) return null;
      // The last byte of a known length waits for verification, so that a response never
      // looks complete before the blob is known to be right.
      const limit = flight.verified
        ? flight.written
        : end !== undefined
          ? Math.min(flight.written, end - 1)
          : flight.written;
      if (this.#position < limit) {
        const want = Math.min(into.length, limit - this.#position, (end ?? limit) - this.#position);
        const chunk = await flight.read(this.#position, want, into);
        this.#position += chunk.length;
        flight.readerMoved();
        return chunk;
      }
      if (flight.error) throw flight.error;
      if (flight.verified) {
        if (end !== undefined && this.#position < end) {
          throw new DrpError('DRP_UPSTREAM_TRUNCATED', 'the blob is shorter than the requested range');
        }
        return null;
      }
      await flight.changed();
    }
  };

  /** Stops reading (the client is done or gone). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#flight.readerGone(this);
  }
}

export class FlightTable {
  readonly store: BlobStore;
  readonly events: CacheEvents | undefined;
  readonly #flights = new Map<string, Flight>();
  #fills = 0;

  constructor(store: BlobStore, events?: CacheEvents) {
    this.store = store;
    this.events = events;
  }

  /**
   * Joins the running fill of `digest` for the same registry, or starts one with `start` (the
   * caller is then its leader: it alone may relay a declined response). Fills are keyed by
   * registry and digest: a slow (or hostile) registry's fill never holds a client of another
   * registry; the store still keeps one copy.
   */
  join(
    digest: string,
    start: () => Promise<UpstreamResponse>,
    info: FlightInfo = {},
  ): { flight: Flight; leader: boolean } {
    const key = flightKey(digest, info.registry);
    const running = this.#flights.get(key);
    if (running) return { flight: running, leader: false };
    const flight = new Flight(this, digest, info, start);
    this.#flights.set(key, flight);
    this.#fills += 1;
    return { flight, leader: true };
  }

  /** Called by a flight when it stops accepting new readers. */
  remove(flight: Flight): void {
    const key = flightKey(flight.digest, flight.info.registry);
    if (this.#flights.get(key) === flight) this.#flights.delete(key);
  }

  stats(): FlightStats {
    return { fills: this.#fills, active: this.#flights.size };
  }

  /** Aborts every running fill (nothing half-written is kept). */
  close(): void {
    for (const flight of this.#flights.values()) {
      flight.abort(new DrpError('DRP_INTERNAL', 'the cache was closed'));
    }
    this.#flights.clear();
  }
}

function flightKey(digest: string, registry: string | undefined): string {
  return `${registry ?? ''}\0${digest}`;
}
