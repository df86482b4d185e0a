/**
 * The blob engine's facade: verified, single-flight blobs. `get()` answers from the store when
 * the blob is there; otherwise it joins the running fill of the blob (or starts one) and hands
 * back a cursor that is already registered with the fill, so no caller can lose bytes by
 * awaiting something first. Joining a fill that upstream declined (its answer was for the
 * leader's credentials) is retried; the leader alone gets the declined answer to relay.
 */
import type { CacheEvents } from '../events.js';
import type { ContentHandle, ContentStore } from '../store/content-store.js';
import { BlobCursor } from './cursor.js';
import { SharedFill } from './shared-fill.js';
import { FillTable } from './table.js';
import type { FillFetch, FillInfo, FillSource, FillStats } from './types.js';

/** Times a client whose fill was declined (e.g. the leader got a 401) joins again. */
const JOIN_ATTEMPTS = 3;

export interface BlobEngineOptions {
  readonly store: ContentStore;
  /** Where `verify-failed` is reported (the store reports its own events). */
  readonly events?: CacheEvents;
}

/** What `get()` found. Whoever gets a cursor or a handle must close / release it. */
export type BlobResult =
  /** In the store: read it from the pinned handle. */
  | { readonly kind: 'stored'; readonly handle: ContentHandle }
  /** Streaming from upstream; `meta` is what the fill's leader will commit it with. */
  | {
      readonly kind: 'fill';
      readonly leader: boolean;
      readonly size: number | undefined;
      readonly upstreamMs: number | undefined;
      readonly meta: FillInfo['meta'];
      readonly cursor: BlobCursor;
    }
  /** Upstream answered this leader with something else (401, 404...): relay it. */
  | { readonly kind: 'declined'; readonly response: FillSource }
  /** Every fill joined was declined for its leader: ask upstream without the engine. */
  | { readonly kind: 'contended' };

export class BlobEngine {
  readonly store: ContentStore;
  readonly #table: FillTable;

  constructor(options: BlobEngineOptions) {
    this.store = options.store;
    this.#table = new FillTable(options.store, options.events);
  }

  /** A stored blob, pinned until released; undefined on a miss. No upstream request. */
  open(digest: string): Promise<ContentHandle | undefined> {
    return this.store.open(digest);
  }

  /**
   * The blob, from the store or through the one fill of `(info.registry, digest)`. `fetch`
   * starts the upstream GET when this call leads a new fill; it outlives the caller (a fill
   * that every client left still verifies and commits). Rejects when upstream failed.
   */
  async get(digest: string, fetch: FillFetch, info: FillInfo = {}): Promise<BlobResult> {
    const handle = await this.store.open(digest);
    if (handle) return { kind: 'stored', handle };
    for (let attempt = 0; attempt < JOIN_ATTEMPTS; attempt += 1) {
      const { fill, leader: first } = this.#table.join(digest, fetch, info);
      const start = await fill.started;
      if (start.streaming) {
        // Registered before the caller can await anything: the fill keeps what it needs.
        const cursor = new BlobCursor(fill, 0, start.size);
        fill.attach(cursor);
        const { size, upstreamMs } = fill;
        // Following another process's fill, nobody here fetched it: access is checked by its meta.
        const shared = fill instanceof SharedFill;
        const leader = first && (!shared || fill.leads);
        const meta = shared ? fill.meta : fill.info.meta;
        return { kind: 'fill', leader, size, upstreamMs, meta, cursor };
      }
      if (first) return { kind: 'declined', response: start.response };
    }
    return { kind: 'contended' };
  }

  stats(): FillStats {
    return this.#table.stats();
  }

  /** Aborts running fills. The store is the caller's to close. */
  close(): void {
    this.#table.close();
  }
}
