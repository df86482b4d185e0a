/**
 * The figures of the status page (`/status`, `/status.json`), collected from one cache's
 * events by an object the proxy owns (no module state). Everything is bounded: a per-minute
 * timeline of the last hour, at most MAX_REPOSITORIES repositories (the smallest are dropped),
 * and registries only as drp asked them (the intercepted ones and their auth realms).
 */
import { type CacheEvents, parseRoute, type RequestOutcome, type UpstreamEvent } from '@drp/core';

const MINUTE = 60_000;
const TIMELINE_MINUTES = 60;
const MAX_REPOSITORIES = 500;
const MAX_REGISTRIES = 100;
const FROM_CACHE = new Set(['HIT', 'STALE', 'REVALIDATED']);

export interface RegistryHealth {
  /** Requests drp sent to this registry (including token requests to its auth realm host). */
  requests: number;
  /** Requests without an answer, and 5xx / 429 answers. */
  errors: number;
  rateLimited: number;
  lastError: string | null;
  lastErrorAt: string | null;
  lastStatus: number | null;
  /** Docker Hub's `ratelimit-limit` / `ratelimit-remaining`, and when they were last seen. */
  rateLimitLimit: number | null;
  rateLimitRemaining: number | null;
  rateLimitSeenAt: string | null;
}

export interface TimelinePoint {
  /** Start of the minute, ISO 8601. */
  readonly at: string;
  readonly hits: number;
  readonly misses: number;
}

export interface StatusFigures {
  readonly hits: number;
  readonly misses: number;
  readonly hitRatio: number | null;
  readonly bytesFromCache: number;
  readonly bytesFromUpstream: number;
  readonly requests: number;
  readonly requestsByType: Record<string, number>;
  readonly requestsByCacheStatus: Record<string, number>;
  readonly topRepositories: { repository: string; bytes: number; requests: number }[];
  readonly registries: Record<string, RegistryHealth>;
  readonly timeline: TimelinePoint[];
}

export interface StatsCollector {
  request(outcome: RequestOutcome): void;
  figures(): StatusFigures;
  /** Latest Docker Hub rate-limit figures by registry, for metrics. */
  rateLimits(): Map<string, { limit: number | null; remaining: number | null }>;
  close(): void;
}

export function createStatsCollector(events: CacheEvents, now: () => number = Date.now): StatsCollector {
  let hits = 0;
  let misses = 0;
  let bytesFromCache = 0;
  let bytesFromUpstream = 0;
  let requests = 0;
  const byType = new Map<string, number>();
  const byStatus = new Map<string, number>();
  const repositories = new Map<string, { bytes: number; requests: number }>();
  const registries = new Map<string, RegistryHealth>();
  /** minute number -> counts */
  const minutes = new Map<number, { hits: number; misses: number }>();

  const bucket = () => {
    const minute = Math.floor(now() / MINUTE);
    let b = minutes.get(minute);
    if (!b) {
      b = { hits: 0, misses: 0 };
      minutes.set(minute, b);
      for (const key of minutes.keys()) if (key <= minute - TIMELINE_MINUTES) minutes.delete(key);
    }
    return b;
  };
  const onHit = () => {
    hits += 1;
    bucket().hits += 1;
  };
  const onMiss = () => {
    misses += 1;
    bucket().misses += 1;
  };
  const onUpstream = (e: UpstreamEvent) => {
    let health = registries.get(e.registry);
    if (!health) {
      if (registries.size >= MAX_REGISTRIES) return;
      health = {
        requests: 0,
        errors: 0,
        rateLimited: 0,
        lastError: null,
        lastErrorAt: null,
        lastStatus: null,
        rateLimitLimit: null,
        rateLimitRemaining: null,
        rateLimitSeenAt: null,
      };
      registries.set(e.registry, health);
    }
    const at = new Date(now()).toISOString();
    health.requests += 1;
    health.lastStatus = e.status ?? null;
    if (e.status === 429) health.rateLimited += 1;
    if (e.error !== undefined || (e.status !== undefined && (e.status >= 500 || e.status === 429))) {
      health.errors += 1;
      health.lastError = e.error ?? `${e.method} answered ${e.status}`;
      health.lastErrorAt = at;
    }
    if (e.rateLimitLimit !== undefined || e.rateLimitRemaining !== undefined) {
      health.rateLimitLimit = e.rateLimitLimit ?? health.rateLimitLimit;
      health.rateLimitRemaining = e.rateLimitRemaining ?? health.rateLimitRemaining;
      health.rateLimitSeenAt = at;
    }
  };
  events.on('hit', onHit);
  events.on('miss', onMiss);
  events.on('upstream', onUpstream);

  return {
    request(o) {
      requests += 1;
      byType.set(o.requestType, (byType.get(o.requestType) ?? 0) + 1);
      byStatus.set(o.cacheStatus, (byStatus.get(o.cacheStatus) ?? 0) + 1);
      if (FROM_CACHE.has(o.cacheStatus)) bytesFromCache += o.bytes;
      else bytesFromUpstream += o.bytes;
      let name: string | undefined;
      try {
        name = parseRoute(o.path).name;
      } catch {
        name = undefined;
      }
      if (!name) return;
      const key = `${o.registry}/${name}`;
      const repo = repositories.get(key) ?? { bytes: 0, requests: 0 };
      repo.bytes += o.bytes;
      repo.requests += 1;
      repositories.set(key, repo);
      if (repositories.size > MAX_REPOSITORIES) {
        let smallest: string | undefined;
        let least = Number.POSITIVE_INFINITY;
        for (const [k, v] of repositories) {
          if (k !== key && v.bytes < least) {
            least = v.bytes;
            smallest = k;
          }
        }
        if (smallest !== undefined) repositories.delete(smallest);
      }
    },
    figures() {
      const current = Math.floor(now() / MINUTE);
      const timeline: TimelinePoint[] = [];
      for (let m = current - TIMELINE_MINUTES + 1; m <= current; m += 1) {
        const b = minutes.get(m);
        timeline.push({ at: new Date(m * MINUTE).toISOString(), hits: b?.hits ?? 0, misses: b?.misses ?? 0 });
      }
      return {
        hits,
        misses,
        hitRatio: hits + misses === 0 ? null : hits / (hits + misses),
        bytesFromCache,
        bytesFromUpstream,
        requests,
        requestsByType: Object.fromEntries([...byType].sort((a, b) => b[1] - a[1])),
        requestsByCacheStatus: Object.fromEntries([...byStatus].sort((a, b) => b[1] - a[1])),
        topRepositories: [...repositories]
          .sort((a, b) => b[1].bytes - a[1].bytes)
          .slice(0, 10)
          .map(([repository, v]) => ({ repository, bytes: v.bytes, requests: v.requests })),
        registries: Object.fromEntries([...registries].map(([k, v]) => [k, { ...v }])),
        timeline,
      };
    },
    rateLimits() {
      const result = new Map<string, { limit: number | null; remaining: number | null }>();
      for (const [k, v] of registries) {
        if (v.rateLimitSeenAt !== null)
          result.set(k, { limit: v.rateLimitLimit, remaining: v.rateLimitRemaining });
      }
      return result;
    },
    close() {
      events.off('hit', onHit);
      events.off('miss', onMiss);
      events.off('upstream', onUpstream);
    },
  };
}
