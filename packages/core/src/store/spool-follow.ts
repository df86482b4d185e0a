/**
 * Following another process's fill through the file system: the lease says which spool file
 * the leader writes and how far the fill is; this reads that file as it grows. The spool is
 * opened once by name (only a name of the spool pattern, only in the spool directory, never
 * through a symlink): its descriptor keeps reading the same bytes after the leader renames it
 * into the content tree. When the lease goes, a committed entry is read from the content file.
 * Hashing and serving what is read is the blob engine's (blob-engine/remote-fill.ts).
 */
import { constants } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import type { ReadAt, RemoteFill, RemoteState } from './content-store.js';
import type { BlobDigest } from './digest.js';
import type { FillClaims } from './fill-claims.js';
import { type LeaseKey, type LeaseSnapshot, StaleWatch } from './fill-lease.js';

export class SpoolFollower implements RemoteFill {
  readonly #claims: FillClaims;
  readonly #key: LeaseKey;
  readonly #d: BlobDigest;
  readonly #watch: StaleWatch;
  /** The lease id this follower follows; a takeover's lease names it as `prev`. */
  #followed: string | undefined;
  #last: LeaseSnapshot | undefined;
  #file: FileHandle | undefined;
  #source: string | undefined;
  /** Files read before a switch: a read may still be running on them, closed with the follower. */
  readonly #previous: FileHandle[] = [];
  #closed = false;

  /** Without `seen`: the entry was found committed. */
  constructor(claims: FillClaims, key: LeaseKey, seen?: LeaseSnapshot) {
    this.#claims = claims;
    this.#key = key;
    this.#d = key.d;
    this.#watch = new StaleWatch(claims.leases.timing.staleMs);
    if (seen) {
      this.#last = seen;
      this.#followed = seen.record?.id;
      this.#watch.stale(seen);
    }
  }

  async poll(): Promise<RemoteState> {
    const snapshot = await this.#claims.leases.read(this.#key);
    if (!snapshot) return this.#ended();
    const record = snapshot.record;
    if (record) {
      const ours =
        this.#followed === undefined || record.id === this.#followed || record.prev === this.#followed;
      // Another lease that does not continue ours: the fill we followed ended.
      if (!ours) return this.#ended();
      this.#followed = record.id;
      await this.#openSource(this.#claims.spoolFile(record.spool));
    }
    this.#last = snapshot;
    if (this.#watch.stale(snapshot)) return { kind: 'stale' };
    if (record?.state === 'streaming') {
      return { kind: 'streaming', size: record.size, ...(record.meta ? { meta: record.meta } : {}) };
    }
    // Connecting, or not readable right now (torn, foreign): judged by staleness alone.
    return { kind: 'connecting' };
  }

  readonly read: ReadAt = async (into, position) => {
    const file = this.#file;
    if (!file) return into.subarray(0, 0);
    const { bytesRead } = await file.read(into, 0, into.length, position);
    if (bytesRead > 0) return into.subarray(0, bytesRead);
    // A takeover's spool may still be copying what the previous one holds: read it there.
    for (const previous of [...this.#previous].reverse()) {
      const older = await previous.read(into, 0, into.length, position);
      if (older.bytesRead > 0) return into.subarray(0, older.bytesRead);
    }
    return into.subarray(0, 0);
  };

  async takeOver() {
    const seen = this.#last;
    if (!seen || this.#closed) return undefined;
    const lease = await this.#claims.takeOver(this.#key, seen);
    if (!lease) return undefined;
    this.#followed = lease.id;
    await this.#openSource(this.#claims.spoolFile(lease.spool));
    return lease;
  }

  async close(): Promise<void> {
    this.#closed = true;
    const files = [...this.#previous, ...(this.#file ? [this.#file] : [])];
    this.#file = undefined;
    this.#previous.length = 0;
    await Promise.all(files.map((file) => file.close().catch(() => undefined)));
  }

  /** No lease for our fill any more: committed if the content file is there. */
  async #ended(): Promise<RemoteState> {
    const meta = await this.#claims.committedBlob(this.#d);
    if (meta && (await this.#openSource(this.#claims.contentFile(this.#d)))) {
      const size = (await (this.#file as FileHandle).stat()).size;
      return { kind: 'ended', committed: true, size, meta };
    }
    return { kind: 'ended', committed: false };
  }

  /**
   * Reads from `path` from now on (the same bytes at the same offsets: a takeover's spool starts
   * with a copy, the content file is the committed spool). False when it cannot be opened.
   */
  async #openSource(path: string): Promise<boolean> {
    if (this.#source === path && this.#file) return true;
    if (this.#closed) return false;
    let file: FileHandle;
    try {
      file = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch {
      return false; // not created yet, or gone
    }
    if (!(await file.stat()).isFile() || this.#closed) {
      await file.close().catch(() => undefined);
      return false;
    }
    if (this.#file) this.#previous.push(this.#file);
    this.#file = file;
    this.#source = path;
    return true;
  }
}
