/**
 * The single-flight table: at most one running fill per registry and digest. Fills are keyed
 * by registry too, so a slow (or hostile) registry's fill never holds a client of another
 * registry; the store still keeps one copy.
 */
import { DrpError } from '../api/errors.js';
import type { CacheEvents } from '../events.js';
import type { ContentStore } from '../store/content-store.js';
import { Fill } from './fill.js';
import type { FillHost } from './fill-support.js';
import { SharedFill, type SharedFillHost } from './shared-fill.js';
import type { FillFetch, FillInfo, FillStats } from './types.js';

/** A fill of this process: alone, or (a store with `claim`) coordinated with other processes. */
export type TableFill = Fill | SharedFill;

export class FillTable implements FillHost, SharedFillHost {
  readonly store: ContentStore;
  readonly events: CacheEvents | undefined;
  readonly #fills = new Map<string, TableFill>();
  #started = 0;

  constructor(store: ContentStore, events?: CacheEvents) {
    this.store = store;
    this.events = events;
  }

  /** Joins the running fill, or starts one with `fetch` (the caller is then its leader). */
  join(digest: string, fetch: FillFetch, info: FillInfo): { fill: TableFill; leader: boolean } {
    const key = fillKey(digest, info.registry);
    const running = this.#fills.get(key);
    if (running) return { fill: running, leader: false };
    // Only the first client of this process claims across processes; the others join here.
    const fill = this.store.claim
      ? new SharedFill(this, digest, info, fetch)
      : new Fill(this, digest, info, fetch);
    this.#fills.set(key, fill);
    this.#started += 1;
    return { fill, leader: true };
  }

  remove(fill: TableFill): void {
    const key = fillKey(fill.digest, fill.info.registry);
    if (this.#fills.get(key) === fill) this.#fills.delete(key);
  }

  stats(): FillStats {
    return { fills: this.#started, active: this.#fills.size };
  }

  /** Aborts every running fill (nothing half-written is kept). */
  close(): void {
    for (const fill of this.#fills.values()) fill.abort(new DrpError('DRP_INTERNAL', 'the cache was closed'));
    this.#fills.clear();
  }
}

function fillKey(digest: string, registry: string | undefined): string {
  return `${registry ?? ''}\0${digest}`;
}
