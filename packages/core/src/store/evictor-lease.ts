/**
 * An exclusive lease file shared by every process on one cache directory (workers on a host,
 * replicas on an NFS/CephFS volume): the holder is the one evictor of the directory.
 *
 * - Taken with `O_CREAT|O_EXCL` (atomic on local file systems, NFSv4, CephFS), holding one JSON
 *   line: `{ id, host, pid, maxBytes }`; the id is host + pid + random, so it means something
 *   across nodes and across restarts of a pid-1 container.
 * - The holder refreshes the file's mtime every `heartbeatMs` and checks the file still names
 *   it (it steps down when it does not).
 * - A lease is stale when its holder is a dead pid on this host, or when its (inode, mtime,
 *   size) has not changed for `staleMs` of this process's own monotonic clock: no comparison
 *   with another node's clock, so clock skew cannot make a live lease look stale. A garbage or
 *   empty file is judged by the second rule only (it may be a holder between create and write).
 * - Takeover removes the stale file only if it still is the one judged stale, then creates a new
 *   one with O_EXCL. Two processes racing may both believe they hold it for at most one
 *   heartbeat: the loser sees another id at its next heartbeat and steps down. Two evictors for
 *   a few seconds evict least recently used entries twice as eagerly, never wrong content.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, unlink, utimes } from 'node:fs/promises';
import { hostname } from 'node:os';
import createDebug from 'debug';

const debug = createDebug('drp:store:lease');

export interface LeaseInfo {
  readonly id: string;
  readonly host: string;
  readonly pid: number;
  /** The holder's configured cap: the one that applies to the directory. */
  readonly maxBytes?: number;
}

export interface LeaseOptions {
  readonly path: string;
  readonly maxBytes: number;
  /** Unchanged this long (own clock) = stale. Default 30 s. */
  readonly staleMs?: number;
  /** Refresh (holder) / retry (others) interval. Default staleMs / 6. */
  readonly heartbeatMs?: number;
  /** Called when this process gains or loses the lease. */
  readonly onChange?: (held: boolean) => void;
}

const HOST =
  hostname()
    .replace(/[^A-Za-z0-9.-]/g, '_')
    .slice(0, 64) || 'host';
const ID_LINE = /^[A-Za-z0-9._-]{1,128}$/;

/** `host-pid-random`: unique per process, readable by an operator. */
export function processId(): string {
  return `${HOST}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/** True when `info` names a process on this host that no longer runs (or a previous us). */
export function deadOnThisHost(info: { host: string; pid: number; id: string }, ownId: string): boolean {
  if (info.host !== HOST || info.id === ownId) return false;
  // A restarted container is often pid 1 again: same pid, other id = a previous incarnation.
  if (info.pid === process.pid) return true;
  try {
    process.kill(info.pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

export function parseLease(text: string): LeaseInfo | undefined {
  try {
    const v = JSON.parse(text) as Partial<LeaseInfo> | null;
    if (typeof v !== 'object' || v === null) return undefined;
    if (typeof v.id !== 'string' || !ID_LINE.test(v.id)) return undefined;
    if (typeof v.host !== 'string' || typeof v.pid !== 'number' || !Number.isSafeInteger(v.pid))
      return undefined;
    const maxBytes =
      typeof v.maxBytes === 'number' && Number.isSafeInteger(v.maxBytes) && v.maxBytes > 0
        ? v.maxBytes
        : undefined;
    return { id: v.id, host: v.host, pid: v.pid, ...(maxBytes ? { maxBytes } : {}) };
  } catch {
    return undefined;
  }
}

export class EvictorLease {
  readonly id: string;
  readonly #options: LeaseOptions;
  readonly #staleMs: number;
  readonly #heartbeatMs: number;
  #held = false;
  #holder: LeaseInfo | undefined;
  /** What the lease file looked like, and since when (own monotonic clock). */
  #seen: { key: string; since: number } | undefined;
  #timer: NodeJS.Timeout | undefined;
  #ticking: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(options: LeaseOptions, id = processId()) {
    this.#options = options;
    this.id = id;
    this.#staleMs = options.staleMs ?? 30_000;
    this.#heartbeatMs = options.heartbeatMs ?? Math.max(100, Math.floor(this.#staleMs / 6));
  }

  get held(): boolean {
    return this.#held;
  }

  /** The holder as last read (this process when held). */
  get holder(): LeaseInfo | undefined {
    return this.#held ? this.#info() : this.#holder;
  }

  /** One attempt now, then keeps trying / refreshing on a timer. */
  async start(): Promise<void> {
    await this.tick();
    this.#timer = setInterval(() => void this.tick(), this.#heartbeatMs);
    this.#timer.unref();
  }

  /** Refreshes the lease when held, tries to take it otherwise. Serialised. */
  tick(): Promise<void> {
    const run = () => (this.#held ? this.#refresh() : this.#tryAcquire());
    this.#ticking = this.#ticking.then(run, run).catch((error: unknown) => {
      debug('lease tick failed: %s', (error as Error).message);
    });
    return this.#ticking;
  }

  /** Gives the lease up (the file is removed only if it still names this process). */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    await this.#ticking;
    if (!this.#held) return;
    this.#set(false);
    const current = await this.#read();
    if (current?.info?.id === this.id) await unlink(this.#options.path).catch(() => undefined);
  }

  #info(): LeaseInfo {
    return { id: this.id, host: HOST, pid: process.pid, maxBytes: this.#options.maxBytes };
  }

  #set(held: boolean): void {
    if (held === this.#held) return;
    this.#held = held;
    debug('%s %s the evictor lease', this.id, held ? 'holds' : 'lost');
    this.#options.onChange?.(held);
  }

  async #read(): Promise<{ info: LeaseInfo | undefined; key: string } | undefined> {
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      // open, then fstat: on NFS an open revalidates the attributes (close-to-open), a bare
      // stat may answer from the attribute cache and make a live lease look unchanged.
      handle = await open(this.#options.path, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    try {
      const st = await handle.stat();
      const buffer = Buffer.alloc(4096);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
      const info = parseLease(buffer.subarray(0, bytesRead).toString('utf8'));
      return { info, key: `${st.ino}:${st.mtimeMs}:${st.size}` };
    } finally {
      await handle.close();
    }
  }

  /** O_EXCL create; false when the file exists. */
  async #create(): Promise<boolean> {
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(
        this.#options.path,
        constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL,
        0o600,
      );
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw error;
    }
    try {
      await handle.writeFile(`${JSON.stringify(this.#info())}\n`);
    } finally {
      await handle.close();
    }
    this.#seen = undefined;
    this.#set(true);
    return true;
  }

  async #tryAcquire(): Promise<void> {
    if (this.#closed || (await this.#create())) return;
    const current = await this.#read();
    if (!current) return; // released meanwhile: the next tick takes it
    this.#holder = current.info;
    if (current.info?.id === this.id) {
      this.#set(true);
      return;
    }
    const now = performance.now();
    if (this.#seen?.key !== current.key) this.#seen = { key: current.key, since: now };
    const dead = current.info !== undefined && deadOnThisHost(current.info, this.id);
    if (!dead && now - this.#seen.since < this.#staleMs) return;
    // Remove it only if it is still the file judged stale (another process may have won).
    const again = await this.#read();
    if (again?.key !== current.key) return;
    debug('taking over a stale lease of %s', current.info?.id ?? 'an unreadable holder');
    await unlink(this.#options.path).catch(() => undefined);
    await this.#create();
  }

  async #refresh(): Promise<void> {
    const current = await this.#read();
    if (current?.info?.id !== this.id) {
      // Taken over (we were stalled past staleMs) or removed: step down, try again next tick.
      this.#holder = current?.info;
      this.#set(false);
      return;
    }
    const now = new Date();
    await utimes(this.#options.path, now, now);
  }
}
