/**
 * The route table: one entry per request kind, saying which methods read it, which request type
 * the access log gives it and which handler serves its reads. Writes and refusals are the
 * method policy's (pipeline/method-policy.ts), not the table's.
 */
import type { Route, RouteKind } from '../api/route.js';
import type { RequestType } from '../events.js';

/** The handlers a cache instance has (cache.ts builds one of each). */
export type HandlerName = 'blob' | 'manifest' | 'ping' | 'token' | 'push' | 'passthrough';

export interface RouteEntry {
  /** Methods that reach `handler` (upload routes: GET asks an upload's status, passed through). */
  readonly methods: ReadonlySet<string>;
  /** The access log's request type, before the handler refines it. */
  readonly requestType: (route: Route, isPushMethod: boolean) => RequestType;
  readonly handler: HandlerName;
}

const READS: ReadonlySet<string> = new Set(['GET', 'HEAD']);
const fixed = (type: RequestType) => () => type;

export const ROUTES: Readonly<Record<RouteKind, RouteEntry>> = {
  blob: {
    methods: READS,
    requestType: (_route, push) => (push ? 'upload' : 'blob-by-digest'),
    handler: 'blob',
  },
  manifest: {
    methods: READS,
    requestType: (route, push) => {
      if (push) return 'upload';
      return route.digest ? 'manifest-by-digest' : 'manifest-uncached';
    },
    handler: 'manifest',
  },
  ping: { methods: READS, requestType: fixed('ping'), handler: 'ping' },
  tags: { methods: READS, requestType: fixed('tags'), handler: 'passthrough' },
  referrers: { methods: READS, requestType: fixed('referrers'), handler: 'passthrough' },
  catalog: { methods: READS, requestType: fixed('catalog'), handler: 'passthrough' },
  'upload-start': { methods: READS, requestType: fixed('upload'), handler: 'passthrough' },
  upload: { methods: READS, requestType: fixed('upload'), handler: 'passthrough' },
  other: { methods: READS, requestType: fixed('other'), handler: 'passthrough' },
};
