/**
 * One fill of this process for a store shared with other processes (a store with `claim`). The
 * in-process table still holds one fill per registry and digest; this decides, through the
 * store, whether this process leads it (a `Fill` writing through the lease's writer, which
 * other processes follow) or follows another process's fill (`RemoteFillSource`). Either way
 * it is the one CursorSource this process's clients read.
 */
import createDebug from 'debug';
import { DrpError } from '../api/errors.js';
import type { CacheEvents } from '../events.js';
import { FETCHED_BY_KEY, KIND_KEY } from '../store/content-kind.js';
import type { ContentMeta, ContentStore, FillClaim, FillLease } from '../store/content-store.js';
import { blobDigest } from '../store/digest.js';
import type { BlobCursor, CursorSource } from './cursor.js';
import { Fill } from './fill.js';
import type { FillHost } from './fill-support.js';
import { RemoteFillSource } from './remote-fill.js';
import type { FillFetch, FillInfo, FillStart } from './types.js';

const debug = createDebug('drp:flight');

/** Followed fills that end without the blob before a byte (declined for their leader): claim again. */
const CLAIM_ATTEMPTS = 3;

export interface SharedFillHost {
  readonly store: ContentStore;
  readonly events: CacheEvents | undefined;
  /** The fill takes no more joiners. */
  remove(fill: SharedFill): void;
}

type Source = (Fill | RemoteFillSource) & CursorSource;

export class SharedFill implements CursorSource {
  readonly digest: string;
  readonly info: FillInfo;
  readonly started: Promise<FillStart>;
  readonly #host: SharedFillHost;
  readonly #fetch: FillFetch;
  #source: Source | undefined;
  /** A fill of this process continuing a dead leader's (it has no cursors: the follower reads). */
  #takeover: Fill | undefined;
  #closed: Error | undefined;

  constructor(host: SharedFillHost, digest: string, info: FillInfo, fetch: FillFetch) {
    this.#host = host;
    this.digest = digest;
    this.info = info;
    this.#fetch = fetch;
    this.started = this.#run();
    this.started.catch(() => undefined);
  }

  /** True when this process fetches the blob (its first client is the fill's leader). */
  get leads(): boolean {
    return this.#source instanceof Fill;
  }

  /** What the blob will be committed with; following, the leading process's (access checks). */
  get meta(): ContentMeta | undefined {
    const source = this.#source;
    if (source instanceof RemoteFillSource) return source.meta ?? UNKNOWN_FETCHER;
    return this.info.meta;
  }

  get size(): number | undefined {
    return this.#source?.size;
  }

  get upstreamMs(): number | undefined {
    const source = this.#source;
    return source instanceof Fill ? source.upstreamMs : undefined;
  }

  get available(): number {
    return this.#source?.available ?? 0;
  }

  get verified(): boolean {
    return this.#source?.verified ?? false;
  }

  get error(): Error | undefined {
    return this.#closed ?? this.#source?.error;
  }

  attach(cursor: BlobCursor): void {
    this.#sourceNow().attach(cursor);
  }

  read(position: number, length: number, into: Buffer): Promise<Buffer> {
    return this.#sourceNow().read(position, length, into);
  }

  changed(): Promise<void> {
    return this.#sourceNow().changed();
  }

  moved(): void {
    this.#source?.moved();
  }

  detach(cursor: BlobCursor): void {
    this.#source?.detach(cursor);
  }

  /** Stops the fill; cursors see `error`. */
  abort(error: Error): void {
    this.#closed ??= error;
    const source = this.#source;
    if (source instanceof Fill) source.abort(error);
    else source?.stop(error);
    this.#takeover?.abort(error);
  }

  #sourceNow(): Source {
    if (!this.#source) throw new DrpError('DRP_INTERNAL', 'the fill has not started');
    return this.#source;
  }

  async #run(): Promise<FillStart> {
    const { store } = this.#host;
    const d = blobDigest(this.digest);
    const { registry, name, meta } = this.info;
    for (let attempt = 0; attempt < CLAIM_ATTEMPTS && store.claim; attempt += 1) {
      let claim: FillClaim;
      try {
        claim = await store.claim(this.digest, { registry, name, meta });
      } catch (error) {
        // Leases unusable (a read-only or odd directory): single-flight in this process only.
        debug('%s: no claim (%s); fetching alone', this.digest, (error as Error).message);
        break;
      }
      if (claim.kind === 'lead') return this.#lead(claim.lease);
      const follow = new RemoteFillSource(claim.remote, d, this.info, {
        lead: (lease) => this.#continue(lease),
        ended: () => this.#host.remove(this),
        events: this.#host.events,
      });
      this.#source = follow;
      if (this.#closed) follow.stop(this.#closed);
      const start = await follow.started;
      if (start.kind === 'streaming') return { streaming: true, size: start.size };
      if (start.kind === 'lead') return this.#lead(start.lease);
    }
    // No claim, or every fill followed ended without the blob: ask upstream for this process alone.
    const { events } = this.#host;
    return this.#startFill({ store, events, remove: () => this.#host.remove(this) });
  }

  /** This process leads, writing where other processes follow. */
  async #lead(lease: FillLease): Promise<FillStart> {
    const start = await this.#startFill(this.#leaseHost(lease, true));
    if (start.streaming) void lease.streaming(start.size).catch(() => undefined);
    return start;
  }

  #startFill(host: FillHost): Promise<FillStart> {
    const fill = new Fill(host, this.digest, this.info, this.#fetch);
    this.#source = fill;
    if (this.#closed) fill.abort(this.#closed);
    return fill.started;
  }

  /** A takeover mid-stream: a fill continues the dead leader's; the follower goes on reading. */
  #continue(lease: FillLease): void {
    const fill = new Fill(this.#leaseHost(lease, false), this.digest, this.info, this.#fetch);
    this.#takeover = fill;
    if (this.#closed) fill.abort(this.#closed);
    fill.started
      .then((start) => (start.streaming ? lease.streaming(start.size) : undefined))
      .catch(() => undefined);
  }

  /** A fill host whose writer is the lease's; the lease ends when the fill does. */
  #leaseHost(lease: FillLease, ownsEntry: boolean): FillHost {
    return {
      store: { createWriter: (_digest, context) => lease.createWriter(context) },
      events: this.#host.events,
      resumeFrom: lease.resumeFrom,
      remove: () => {
        if (ownsEntry) this.#host.remove(this);
        void lease.release().catch(() => undefined);
      },
    };
  }
}

/** Followed without the leader's metadata: access is checked as for another client's fetch. */
const UNKNOWN_FETCHER: ContentMeta = { [KIND_KEY]: 'blob', [FETCHED_BY_KEY]: 'other-process' };
