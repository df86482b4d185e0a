/**
 * Spool files in a directory several processes share. The rule (agreed with the fill leases of
 * blob-engine/): a `.part` spool file whose mtime is older than SPOOL_GRACE_MS is garbage; a
 * live writer keeps its spool's mtime fresh (its writes, or the heartbeat below at least every
 * SPOOL_HEARTBEAT_MS), so a starting process never removes another live process's fill, and a
 * crashed one's leftovers go within minutes. The same grace protects temp files of the
 * journals and content files just renamed into place and about to be indexed.
 */
import type { EventEmitter } from 'node:events';
import type { FileHandle } from 'node:fs/promises';
import { readdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import createDebug from 'debug';

const debug = createDebug('drp:store:spool');

export const SPOOL_GRACE_MS = 10 * 60_000;
export const SPOOL_HEARTBEAT_MS = 10_000;

/** True when the file at `path` was not modified for `graceMs` (wall clock vs mtime). */
export async function olderThan(path: string, graceMs: number): Promise<boolean> {
  try {
    return Date.now() - (await stat(path)).mtimeMs > graceMs;
  } catch {
    return false;
  }
}

/** Removes files of `dir` matching `pattern` whose mtime is older than `graceMs`; returns how many. */
export async function collectStale(dir: string, pattern: RegExp, graceMs: number): Promise<number> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const name of names) {
    if (!pattern.test(name)) continue;
    const path = join(dir, name);
    if (!(await olderThan(path, graceMs))) continue;
    debug('removing stale %s', path);
    await unlink(path).then(
      () => {
        removed += 1;
      },
      () => undefined,
    );
  }
  return removed;
}

/** Keeps the mtime of this process's open spool files fresh while they are open. */
export class SpoolHeartbeat {
  readonly #open = new Set<FileHandle>();
  #timer: NodeJS.Timeout | undefined;

  constructor(everyMs = SPOOL_HEARTBEAT_MS) {
    this.#timer = setInterval(() => this.beat(), everyMs);
    this.#timer.unref();
  }

  /** Tracks `file` until it is closed. */
  track(file: FileHandle): void {
    this.#open.add(file);
    // A FileHandle is an EventEmitter with 'close' since Node 15.4; @types/node omits it.
    (file as unknown as EventEmitter).once('close', () => this.#open.delete(file));
  }

  beat(): void {
    const now = new Date();
    // futimes on the open handle: right even if the file was renamed (committed) meanwhile.
    for (const file of this.#open) void file.utimes(now, now).catch(() => this.#open.delete(file));
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
