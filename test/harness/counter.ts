// Records the requests that reached a server (a registry or a front) so tests can assert
// things like "the second pull made zero upstream blob requests".
import type { IncomingHttpHeaders } from 'node:http';

export type RequestKind =
  | 'ping' // GET /v2/
  | 'manifest' // /v2/<name>/manifests/<ref>
  | 'blob' // /v2/<name>/blobs/<digest>
  | 'upload' // /v2/<name>/blobs/uploads/...
  | 'tags' // /v2/<name>/tags/list
  | 'referrers' // /v2/<name>/referrers/<digest>
  | 'catalog' // /v2/_catalog
  | 'other';

export interface RecordedRequest {
  method: string;
  /** Request target as sent, including the query string. */
  path: string;
  status: number;
  /** Response body bytes written (0 for HEAD). */
  bytes: number;
  kind: RequestKind;
  /** Repository name for /v2/<name>/... routes. */
  repo?: string;
  /** Tag or digest for manifests, digest for blobs. */
  reference?: string;
  /** Date.now() when the request was recorded (i.e. when it completed). */
  at: number;
  userAgent?: string;
  /** Request headers, when the recorder saw them (fronts and fake servers; not the registry log). */
  headers?: IncomingHttpHeaders;
}

export interface RequestFilter {
  method?: string;
  kind?: RequestKind;
  /** Exact path (query string ignored) or a RegExp tested against the full path. */
  path?: string | RegExp;
  repo?: string;
  reference?: string;
  status?: number;
}

const ROUTE =
  /^\/v2\/(.+?)\/(manifests|blobs\/uploads|blobs|tags\/list|referrers)(?:\/([^/?]*))?(?:\/[^?]*)?(?:\?.*)?$/;

/** Classifies a registry API path. */
export function classify(path: string): Pick<RecordedRequest, 'kind' | 'repo' | 'reference'> {
  const bare = path.split('?')[0] ?? path;
  if (bare === '/v2/' || bare === '/v2') return { kind: 'ping' };
  if (bare === '/v2/_catalog') return { kind: 'catalog' };
  const m = ROUTE.exec(path);
  if (!m) return { kind: 'other' };
  const [, repo, route, ref] = m;
  const kinds: Record<string, RequestKind> = {
    manifests: 'manifest',
    blobs: 'blob',
    'blobs/uploads': 'upload',
    'tags/list': 'tags',
    referrers: 'referrers',
  };
  const kind = kinds[route ?? ''] ?? 'other';
  return ref && kind !== 'tags' && kind !== 'upload' ? { kind, repo, reference: ref } : { kind, repo };
}

export function matches(r: RecordedRequest, f: RequestFilter): boolean {
  if (f.method && r.method !== f.method.toUpperCase()) return false;
  if (f.kind && r.kind !== f.kind) return false;
  if (f.repo && r.repo !== f.repo) return false;
  if (f.reference && r.reference !== f.reference) return false;
  if (f.status !== undefined && r.status !== f.status) return false;
  if (f.path !== undefined) {
    if (typeof f.path === 'string') {
      if ((r.path.split('?')[0] ?? r.path) !== f.path) return false;
    } else if (!f.path.test(r.path)) return false;
  }
  return true;
}

export class RequestCounter {
  private log: RecordedRequest[] = [];
  private lastAt = 0;
  private waiters: (() => void)[] = [];

  /** Adds a request (called by the registry log parser and the fronts). */
  record(entry: Omit<RecordedRequest, 'kind' | 'repo' | 'reference' | 'at'> & { at?: number }): void {
    const r: RecordedRequest = {
      ...entry,
      method: entry.method.toUpperCase(),
      ...classify(entry.path),
      at: entry.at ?? Date.now(),
    };
    this.log.push(r);
    this.lastAt = Date.now();
    const w = this.waiters;
    this.waiters = [];
    for (const fn of w) fn();
  }

  /** Every request recorded since the last reset(), oldest first (optionally filtered). */
  requests(filter: RequestFilter = {}): RecordedRequest[] {
    return this.log.filter((r) => matches(r, filter));
  }

  count(filter: RequestFilter = {}): number {
    return this.requests(filter).length;
  }

  /** Sum of response body bytes of the matching requests. */
  bytes(filter: RequestFilter = {}): number {
    return this.requests(filter).reduce((s, r) => s + r.bytes, 0);
  }

  reset(): void {
    this.log = [];
  }

  /**
   * Resolves once nothing has been recorded for `quietMs` (default 100 ms, so it always takes
   * at least that long). Call it after a client finishes and before asserting: the registry
   * logs a request only after it has sent the response.
   */
  async settle(quietMs = 100, timeoutMs = 10_000): Promise<void> {
    // Quiet is measured from the later of the last record and this call, so a log line
    // still in flight when settle() is called gets its quietMs to arrive.
    const calledAt = Date.now();
    const deadline = calledAt + timeoutMs;
    for (;;) {
      const idle = Date.now() - Math.max(this.lastAt, calledAt);
      if (idle >= quietMs) return;
      if (Date.now() > deadline) throw new Error(`requests still arriving after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, quietMs - idle + 1));
    }
  }

  /** Resolves when at least `n` requests match `filter` (rejects after `timeoutMs`). */
  async waitFor(filter: RequestFilter, n = 1, timeoutMs = 10_000): Promise<RecordedRequest[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.requests(filter);
      if (found.length >= n) return found;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `timed out waiting for ${n} request(s) matching ${JSON.stringify(filter)}; saw ${found.length}`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** One line per request, for assertion messages. */
  summary(filter: RequestFilter = {}): string {
    return this.requests(filter)
      .map((r) => `${r.method} ${r.path} -> ${r.status} (${r.bytes} B)`)
      .join('\n');
  }
}
