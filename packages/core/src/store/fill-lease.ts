/**
 * Lease files: which process leads the fill of a digest, across processes and hosts sharing one
 * cache directory (`<dir>/drp-leases/<alg>-<hex>.lease`). Only the file system arbitrates:
 *
 * - taking a lease is an `O_EXCL` create; its content names the holder (host, pid namespace,
 *   pid, a random id), its spool file and what the fill is doing, plus a checksum (a torn or
 *   foreign file parses as nothing);
 * - the holder touches its mtime every `heartbeatMs` through its own descriptor (so a holder
 *   that lost its file never refreshes another one);
 * - a lease is stale when an observer saw it unchanged (inode, size, mtime) for `staleMs` on its
 *   own clock (no clock skew between hosts matters), or at once when its holder is a dead pid
 *   of this host's pid namespace;
 * - breaking a stale lease happens under a break lock (`.break`, `O_EXCL`): the breaker checks
 *   it still sees what it judged stale, renames the lease to a unique tomb and checks the tomb
 *   is that inode (else puts it back). Then it creates its own lease with `O_EXCL`: among many
 *   takers exactly one wins, and a fresh lease is never deleted.
 */
import { createHash, randomUUID } from 'node:crypto';
import { constants } from 'node:fs';
import { type FileHandle, link, mkdir, open, rename, stat, unlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import createDebug from 'debug';
import type { BlobDigest } from './digest.js';
import { decodeRecord, encodeRecord, holderDead, type LeaseRecord } from './fill-lease-record.js';

export {
  decodeRecord,
  encodeRecord,
  holderDead,
  type LeaseRecord,
  newRecord,
  SPOOL_NAME,
} from './fill-lease-record.js';

const debug = createDebug('drp:lease');

/** A lease file is a few hundred bytes; anything bigger is not one. */
const MAX_LEASE_BYTES = 4096;

export interface LeaseTiming {
  /** How often a holder touches its lease (and its spool). */
  readonly heartbeatMs: number;
  /** A lease seen unchanged this long is stale. At least 2 heartbeats. */
  readonly staleMs: number;
}

/** 5 s heartbeat, stale after 15 s unchanged: a dead leader is replaced within ~16 s. */
export const DEFAULT_LEASE_TIMING: LeaseTiming = { heartbeatMs: 5000, staleMs: 15_000 };

/** What a lease is for: one digest fetched for one registry (fills are keyed by both). */
export interface LeaseKey {
  readonly d: BlobDigest;
  readonly registry?: string | undefined;
}

/** A lease file as one read saw it. `record` is undefined when the content is not a lease. */
export interface LeaseSnapshot {
  readonly record: LeaseRecord | undefined;
  /** Inode, size and mtime: any change means the holder is alive. */
  readonly sig: string;
  readonly ino: bigint;
}

/** The lease directory of one cache directory. */
export class LeaseDir {
  readonly dir: string;
  readonly timing: LeaseTiming;
  #made: Promise<unknown> | undefined;

  constructor(dir: string, timing: LeaseTiming = DEFAULT_LEASE_TIMING) {
    this.dir = dir;
    this.timing = timing;
  }

  path(key: LeaseKey): string {
    const { d, registry } = key;
    // Fills are keyed by registry too: one registry's fill never holds another's clients.
    const scope =
      registry === undefined ? '' : `.${createHash('sha256').update(registry).digest('hex').slice(0, 16)}`;
    return join(this.dir, `${d.algorithm}-${d.hex}${scope}.lease`);
  }

  /** Takes the lease of `key` with `record`; undefined when someone holds one. */
  async create(key: LeaseKey, record: LeaseRecord): Promise<HeldLease | undefined> {
    this.#made ??= mkdir(this.dir, { recursive: true, mode: 0o700 });
    await this.#made;
    const path = this.path(key);
    let file: FileHandle;
    try {
      file = await open(path, 'wx', 0o600);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return undefined;
      throw error;
    }
    try {
      const bytes = encodeRecord(record);
      await file.write(bytes, 0, bytes.length, 0);
      const { ino } = await file.stat({ bigint: true });
      return new HeldLease(path, file, ino, record, this.timing);
    } catch (error) {
      await file.close().catch(() => undefined);
      await unlink(path).catch(() => undefined);
      throw error;
    }
  }

  /**
   * The lease of `d` now; undefined when there is none. Opened afresh each time: on NFS an open
   * revalidates the attributes (close-to-open), a bare stat may answer from the cache.
   */
  async read(key: LeaseKey): Promise<LeaseSnapshot | undefined> {
    let file: FileHandle;
    try {
      file = await open(this.path(key), constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return undefined;
      // A symlink or something unreadable where a lease should be: foreign, judged by staleness.
      const info = await stat(this.path(key), { bigint: true }).catch(() => undefined);
      if (!info) return undefined;
      return { record: undefined, sig: signature(info), ino: info.ino };
    }
    try {
      const info = await file.stat({ bigint: true });
      const sig = signature(info);
      if (!info.isFile() || info.size > BigInt(MAX_LEASE_BYTES))
        return { record: undefined, sig, ino: info.ino };
      const buffer = Buffer.alloc(Number(info.size));
      const { bytesRead } = await file.read(buffer, 0, buffer.length, 0);
      return { record: decodeRecord(buffer.subarray(0, bytesRead)), sig, ino: info.ino };
    } finally {
      await file.close().catch(() => undefined);
    }
  }

  /**
   * Removes the lease of `d` if it is still exactly `seen` (which the caller judged stale).
   * True when it did; false when another taker is at it or the lease changed.
   */
  async breakStale(key: LeaseKey, seen: LeaseSnapshot): Promise<boolean> {
    const path = this.path(key);
    const lockPath = `${path}.break`;
    let lock: FileHandle;
    try {
      lock = await open(lockPath, 'wx', 0o600);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      await this.#clearDeadBreakLock(lockPath);
      return false;
    }
    try {
      const now = await this.read(key);
      if (!now || now.sig !== seen.sig) return false;
      const tomb = `${path}.${randomUUID()}.tomb`;
      try {
        await rename(path, tomb);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
        throw error;
      }
      const moved = await stat(tomb, { bigint: true }).catch(() => undefined);
      if (moved?.ino === seen.ino) {
        await unlink(tomb).catch(() => undefined);
        debug('broke stale lease %s (%s)', path, seen.record?.id ?? 'not a lease');
        return true;
      }
      // Not what was judged stale: put it back (never over a newer one).
      await link(tomb, path).catch(() => undefined);
      await unlink(tomb).catch(() => undefined);
      return false;
    } finally {
      await lock.close().catch(() => undefined);
      await unlink(lockPath).catch(() => undefined);
    }
  }

  /** A break lock is held for milliseconds; one left by a dead breaker is removed. */
  async #clearDeadBreakLock(lockPath: string): Promise<void> {
    const info = await stat(lockPath).catch(() => undefined);
    if (info && Date.now() - info.mtimeMs > 4 * this.timing.staleMs) {
      await unlink(lockPath).catch(() => undefined);
    }
  }
}

function signature(info: { ino: bigint; size: bigint; mtimeNs: bigint }): string {
  return `${info.ino}:${info.size}:${info.mtimeNs}`;
}

/** Judges staleness by watching a lease's signature on this process's clock. */
export class StaleWatch {
  readonly #staleMs: number;
  #sig: string | undefined;
  #since = 0;

  constructor(staleMs: number) {
    this.#staleMs = staleMs;
  }

  /** True when `snapshot` has not changed for `staleMs` (or its holder is dead here). */
  stale(snapshot: LeaseSnapshot): boolean {
    const now = performance.now();
    if (snapshot.sig !== this.#sig) {
      this.#sig = snapshot.sig;
      this.#since = now;
    }
    if (snapshot.record && holderDead(snapshot.record)) return true;
    return now - this.#since >= this.#staleMs;
  }
}

/** A lease this process holds: heartbeat until `release()`. */
export class HeldLease {
  readonly path: string;
  record: LeaseRecord;
  readonly #file: FileHandle;
  readonly #ino: bigint;
  readonly #timing: LeaseTiming;
  readonly #timer: NodeJS.Timeout;
  /** Files kept fresh with the lease (the spool: spool GC spares a live writer's file). */
  readonly touched = new Set<string>();
  #lastBeat = performance.now();
  #lost = false;
  #released = false;

  constructor(path: string, file: FileHandle, ino: bigint, record: LeaseRecord, timing: LeaseTiming) {
    this.path = path;
    this.#file = file;
    this.#ino = ino;
    this.record = record;
    this.#timing = timing;
    this.#timer = setInterval(() => void this.beat(), timing.heartbeatMs);
    this.#timer.unref();
  }

  get lost(): boolean {
    return this.#lost;
  }

  /** Touches the lease (through its own descriptor) and the files kept with it. */
  async beat(): Promise<void> {
    if (this.#released || this.#lost) return;
    const now = new Date();
    try {
      await this.#file.utimes(now, now);
      this.#lastBeat = performance.now();
      const current = await stat(this.path, { bigint: true }).catch(() => undefined);
      if (current?.ino !== this.#ino) {
        // Broken while this process was not beating (paused): the fill goes on, the lease is not ours.
        this.#lost = true;
        debug('lost lease %s', this.path);
        return;
      }
      for (const path of this.touched) {
        await utimes(path, now, now).catch(() => undefined);
      }
    } catch (error) {
      debug('heartbeat of %s failed: %s', this.path, (error as Error).message);
    }
  }

  /** Rewrites the record (same descriptor; readers check the checksum). */
  async update(patch: Partial<Pick<LeaseRecord, 'state' | 'size'>>): Promise<void> {
    if (this.#released || this.#lost) return;
    this.record = { ...this.record, ...patch };
    const bytes = encodeRecord(this.record);
    await this.#file.write(bytes, 0, bytes.length, 0);
    await this.#file.truncate(bytes.length);
    this.#lastBeat = performance.now();
  }

  /** Removes the lease file if it is still this lease. Idempotent. */
  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    clearInterval(this.#timer);
    try {
      if (this.#lost) return;
      if (performance.now() - this.#lastBeat > this.#timing.staleMs / 2) {
        // Late: make it fresh again first, so nobody is judging it stale while it goes.
        const now = new Date();
        await this.#file.utimes(now, now).catch(() => undefined);
      }
      const current = await stat(this.path, { bigint: true }).catch(() => undefined);
      if (current?.ino === this.#ino) await unlink(this.path).catch(() => undefined);
    } finally {
      await this.#file.close().catch(() => undefined);
    }
  }
}
