/**
 * Cross-process single-flight for a store on a shared directory (the `claim` capability of the
 * ContentStore contract): the first process takes the digest's lease and leads the fill; the
 * others follow its spool file (store/spool-follow.ts); a follower takes over a stale lease,
 * continuing from a copy of the dead leader's spool. Lease files: store/fill-lease.ts.
 */
import { randomUUID } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import { type FileHandle, open, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import cacache from 'cacache';
import createDebug from 'debug';
import { DrpError } from '../api/errors.js';
import { kindOf } from './content-kind.js';
import type {
  ClaimContext,
  ContentMeta,
  ContentWriter,
  FillClaim,
  FillLease,
  WriteContext,
} from './content-store.js';
import { type BlobDigest, blobDigest, blobKey, contentPath } from './digest.js';
import {
  type HeldLease,
  type LeaseDir,
  type LeaseKey,
  type LeaseSnapshot,
  newRecord,
  SPOOL_NAME,
} from './fill-lease.js';
import { SpoolFollower } from './spool-follow.js';

const debug = createDebug('drp:lease');

/** Claims that keep finding a lease released in between give up (never a busy loop). */
const CLAIM_ATTEMPTS = 5;
const COPY_CHUNK = 1024 * 1024;

export interface FillClaimsOptions {
  readonly dir: string;
  readonly spoolDir: string;
  readonly leases: LeaseDir;
  /** A store writer spooling to `path` (a fresh file). */
  readonly writerAt: (digest: string, path: string, context: WriteContext) => Promise<ContentWriter>;
}

export class FillClaims {
  readonly options: FillClaimsOptions;

  constructor(options: FillClaimsOptions) {
    this.options = options;
  }

  get leases(): LeaseDir {
    return this.options.leases;
  }

  contentFile(d: BlobDigest): string {
    return contentPath(this.options.dir, d);
  }

  /** A spool file of this directory by name; the name is checked (it may come from a lease file). */
  spoolFile(name: string): string {
    if (!SPOOL_NAME.test(name)) throw new DrpError('DRP_INTERNAL', `not a spool file name: ${name}`);
    return join(this.options.spoolDir, name);
  }

  async claim(digest: string, context: ClaimContext = {}): Promise<FillClaim> {
    const d = blobDigest(digest);
    const key: LeaseKey = { d, registry: context.registry };
    const { meta, ...writeContext } = context;
    for (let attempt = 0; attempt < CLAIM_ATTEMPTS; attempt += 1) {
      // Committed by another process (its entry may not be in this process's table yet).
      const committed = await this.committedBlob(d);
      if (committed) return { kind: 'follow', remote: new SpoolFollower(this, key) };
      const held = await this.leases.create(key, newRecord(`${randomUUID()}.part`, undefined, meta));
      if (held) return { kind: 'lead', lease: new SpoolLease(this, d, held, writeContext) };
      const seen = await this.leases.read(key);
      if (seen) return { kind: 'follow', remote: new SpoolFollower(this, key, seen) };
    }
    throw new DrpError('DRP_INTERNAL', `the lease of ${digest} keeps changing`);
  }

  /**
   * The metadata of `d` when another process committed it as a blob (index line and content
   * file both there); undefined otherwise (a manifest is never followed as a blob).
   */
  async committedBlob(d: BlobDigest): Promise<ContentMeta | undefined> {
    if (!(await isFile(this.contentFile(d)))) return undefined;
    const info = await cacache.get.info(this.options.dir, blobKey(d.digest)).catch(() => null);
    if (!info || info.integrity !== d.integrity) return undefined;
    const meta = (info.metadata ?? {}) as ContentMeta;
    return kindOf(meta) === 'blob' ? meta : undefined;
  }

  /**
   * Leads the fill of a stale lease: breaks it, takes a new one naming a new spool file, and
   * copies the dead leader's bytes into it through a store writer (which hashes them). The
   * fill then continues from `resumeFrom`. Undefined when another process won.
   */
  async takeOver(key: LeaseKey, seen: LeaseSnapshot): Promise<SpoolLease | undefined> {
    const { d } = key;
    if (!(await this.leases.breakStale(key, seen))) return undefined;
    const held = await this.leases.create(
      key,
      newRecord(`${randomUUID()}.part`, seen.record?.id, seen.record?.meta),
    );
    if (!held) return undefined;
    const lease = new SpoolLease(this, d, held, {});
    const old = seen.record ? this.spoolFile(seen.record.spool) : undefined;
    try {
      const writer = await lease.prepareWriter();
      if (old) await copyInto(writer, old);
      debug('took over %s at %d bytes', d.digest, writer.written);
    } catch (error) {
      // The writer could not be made: lead from nothing rather than leave the fill to nobody.
      debug('takeover copy of %s failed: %s', d.digest, (error as Error).message);
      await lease.discardWriter();
    }
    if (old) await unlink(old).catch(() => undefined);
    return lease;
  }
}

/** The lease of a fill this process leads. */
export class SpoolLease implements FillLease {
  readonly #claims: FillClaims;
  readonly #d: BlobDigest;
  readonly #held: HeldLease;
  readonly #context: WriteContext;
  #writer: ContentWriter | undefined;
  #handedOut = false;

  constructor(claims: FillClaims, d: BlobDigest, held: HeldLease, context: WriteContext) {
    this.#claims = claims;
    this.#d = d;
    this.#held = held;
    this.#context = context;
  }

  get id(): string {
    return this.#held.record.id;
  }

  get spool(): string {
    return this.#held.record.spool;
  }

  get resumeFrom(): number {
    return this.#writer?.written ?? 0;
  }

  /** The fill's writer (on a takeover: the one holding the copied bytes). Once. */
  async createWriter(context: WriteContext = this.#context): Promise<ContentWriter> {
    if (this.#handedOut) throw new DrpError('DRP_INTERNAL', 'a lease has one writer');
    const writer = await this.prepareWriter(context);
    this.#handedOut = true;
    return writer;
  }

  /** Creates the writer without handing it out (a takeover fills it with the copy first). */
  async prepareWriter(context: WriteContext = this.#context): Promise<ContentWriter> {
    if (!this.#writer) {
      const path = this.#claims.spoolFile(this.spool);
      this.#writer = await this.#claims.options.writerAt(this.#d.digest, path, context);
      this.#held.touched.add(path);
    }
    return this.#writer;
  }

  /** Drops a half-copied takeover writer: the fill starts from nothing. */
  async discardWriter(): Promise<void> {
    const writer = this.#writer;
    this.#writer = undefined;
    await writer?.close();
  }

  streaming(size: number | undefined): Promise<void> {
    return this.#held.update({ state: 'streaming', ...(size === undefined ? {} : { size }) });
  }

  async release(): Promise<void> {
    await this.#held.release();
    // A writer never handed out (the fill was declined before it needed one) is ours to close.
    if (!this.#handedOut) await this.discardWriter();
  }
}

async function copyInto(writer: ContentWriter, path: string): Promise<void> {
  let file: FileHandle;
  try {
    file = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch {
    return; // the dead leader never wrote a byte, or its spool was collected: start from nothing
  }
  try {
    if (!(await file.stat()).isFile()) return;
    for (;;) {
      const chunk = Buffer.allocUnsafe(COPY_CHUNK);
      const { bytesRead } = await file.read(chunk, 0, chunk.length, writer.written);
      if (bytesRead === 0) return;
      await writer.write([chunk.subarray(0, bytesRead)]);
    }
  } finally {
    await file.close().catch(() => undefined);
  }
}

async function isFile(path: string): Promise<boolean> {
  const info: Stats | undefined = await stat(path).catch(() => undefined);
  return info?.isFile() ?? false;
}
