/** Shapes shared by the blob engine's files (no logic here). */
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { ContentMeta } from '../store/content-store.js';

/** An upstream answer to a blob GET (UpstreamResponse fits; so does any http response). */
export interface FillSource {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Readable;
  /** Milliseconds upstream took to answer with headers, when measured. */
  readonly headersMs?: number;
  /** Stops the transfer and frees the connection. */
  abort(): void;
}

/**
 * Starts the one upstream GET of a fill. Called once per fill; it must not depend on a client.
 * With `resume` (a takeover of a dead leader's fill), it asks for `Range: bytes=<offset>-`; a
 * fetch that ignores it gets the whole blob, which works too.
 */
export type FillFetch = (resume?: FillResume) => Promise<FillSource>;

export interface FillResume {
  readonly offset: number;
}

/** Who a fill is for. Fills are keyed by registry and digest. */
export interface FillInfo {
  readonly registry?: string;
  readonly name?: string;
  /** Metadata the blob is committed with (its kind and the auth class that fetched it). */
  readonly meta?: ContentMeta;
}

/** How a fill started: streaming, or upstream answered something that is not the blob. */
export type FillStart =
  | { readonly streaming: true; readonly size: number | undefined }
  | { readonly streaming: false; readonly response: FillSource };

export interface FillStats {
  /** Upstream fetches started since the engine was created. */
  readonly fills: number;
  /** Fills running now. */
  readonly active: number;
}
