/**
 * Prometheus metrics from the cache's events and the proxy's tunnels, in a registry owned by
 * one proxy instance (never prom-client's global one, so several proxies can share a process).
 * Node's process metrics keep their standard names (`process_*`, `nodejs_*`) so stock
 * dashboards work; drp's own start with `drp_`. The `registry` label only takes configured
 * registries (REGISTRIES, Docker Hub's hosts) and `other`, so its cardinality is bounded.
 * `aggregator`: how WORKERS=N merges a gauge across workers (cluster/aggregate.ts); figures each
 * worker reads from the one cache directory or CA take the max, the rest sum.
 *
 * prom-client (with @opentelemetry/api, tdigest...) is loaded when the registry is first needed
 * (the first scrape), not at start: it is several MB of a daemon that idles at ~60. Until then
 * each recording is kept as a small closure and replayed, in order, into the registry when it is
 * made, so every count since start is there; after MAX_PENDING recordings without a scrape the
 * registry is made anyway, which bounds that queue. Node's default metrics (process_*,
 * nodejs_*) start with the registry: cumulative ones (CPU, memory) cover the whole process,
 * observed ones (GC durations, event-loop lag) start at the first scrape.
 */
import { createRequire } from 'node:module';
import type { CacheEvents, RequestOutcome, UpstreamEvent } from '@drp/core';
import type { Counter, Histogram, Registry } from 'prom-client';
import type { ForwardRecord, TunnelRecord } from './mitm.js';

const require = createRequire(import.meta.url);
const MAX_PENDING = 10_000;

export interface ProxyMetrics {
  /** prom-client's registry; reading it makes it (and loads prom-client) if no scrape has yet. */
  readonly registry: Registry;
  request(outcome: RequestOutcome): void;
  tunnel(record: TunnelRecord): void;
  forward(record: ForwardRecord): void;
  render(): Promise<{ contentType: string; body: string }>;
  /** Stops listening to the cache's events. */
  close(): void;
}

export interface MetricsSources {
  activeRequests(): number;
  openTunnels(): number;
  cacheStats(): { entries: number; bytes: number; maxBytes: number };
  /** Last Docker Hub rate-limit figures by registry (`host:port`). */
  rateLimits(): ReadonlyMap<string, { limit: number | null; remaining: number | null }>;
  /** A registry's label value: itself when configured, else `other`. */
  registryLabel(registry: string): string;
  readonly caNotAfter: Date;
  readonly version: string;
}

interface Instruments {
  readonly registry: Registry;
  readonly requests: Counter<'cache_status' | 'request_type' | 'status_class' | 'registry'>;
  readonly bytes: Counter<'cache_status'>;
  readonly duration: Histogram<'request_type'>;
  readonly store: Counter<'event' | 'kind'>;
  readonly tunnels: Counter<'result'>;
  readonly tunnelBytes: Counter<'direction'>;
  readonly forwards: Counter<'status_class'>;
  readonly upstream: Counter<'registry' | 'status_class'>;
}

function instruments(live: MetricsSources): Instruments {
  const { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } =
    require('prom-client') as typeof import('prom-client');
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  const requests = new Counter({
    name: 'drp_requests_total',
    help: 'Registry requests served, by cache status and request type',
    labelNames: ['cache_status', 'request_type', 'status_class', 'registry'] as const,
    registers: [registry],
  });
  const bytes = new Counter({
    name: 'drp_response_bytes_total',
    help: 'Response body bytes sent to clients, by cache status',
    labelNames: ['cache_status'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'drp_request_duration_seconds',
    help: 'Time from request to the end of the response',
    labelNames: ['request_type'] as const,
    buckets: [0.005, 0.02, 0.1, 0.5, 2, 10, 60, 300],
    registers: [registry],
  });
  const store = new Counter({
    name: 'drp_cache_events_total',
    help: 'Cache events (hit, miss, store, evict, verify-failed, stale, store-skipped)',
    labelNames: ['event', 'kind'] as const,
    registers: [registry],
  });
  const tunnels = new Counter({
    name: 'drp_tunnels_total',
    help: 'CONNECT tunnels to hosts that are not intercepted',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  const tunnelBytes = new Counter({
    name: 'drp_tunnel_bytes_total',
    help: 'Bytes moved through raw tunnels',
    labelNames: ['direction'] as const,
    registers: [registry],
  });
  const forwards = new Counter({
    name: 'drp_forwarded_requests_total',
    help: 'Plain-HTTP proxy requests forwarded to hosts that are not intercepted',
    labelNames: ['status_class'] as const,
    registers: [registry],
  });
  const upstream = new Counter({
    name: 'drp_upstream_requests_total',
    help: 'Requests drp sent to registries, by registry and status class (error: no answer)',
    labelNames: ['registry', 'status_class'] as const,
    registers: [registry],
  });
  new Gauge({
    name: 'drp_cache_bytes',
    aggregator: 'max',
    help: 'Bytes stored in the cache',
    registers: [registry],
    collect() {
      this.set(live.cacheStats().bytes);
    },
  });
  new Gauge({
    name: 'drp_cache_entries',
    aggregator: 'max',
    help: 'Entries (blobs and manifests) stored in the cache',
    registers: [registry],
    collect() {
      this.set(live.cacheStats().entries);
    },
  });
  new Gauge({
    name: 'drp_cache_max_bytes',
    aggregator: 'max',
    help: 'The cache size cap (CACHE_MAX_SIZE)',
    registers: [registry],
    collect() {
      this.set(live.cacheStats().maxBytes);
    },
  });
  new Gauge({
    name: 'drp_ca_expiry_timestamp_seconds',
    aggregator: 'max',
    help: 'When the CA certificate clients trust expires (Unix time)',
    registers: [registry],
    collect() {
      this.set(Math.floor(live.caNotAfter.getTime() / 1000));
    },
  });
  new Gauge({
    name: 'drp_upstream_ratelimit_remaining',
    aggregator: 'max',
    help: 'Last ratelimit-remaining a registry sent (Docker Hub pulls left in its window)',
    labelNames: ['registry'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [host, figures] of live.rateLimits())
        if (figures.remaining !== null) this.set({ registry: live.registryLabel(host) }, figures.remaining);
    },
  });
  new Gauge({
    name: 'drp_upstream_ratelimit_limit',
    aggregator: 'max',
    help: 'Last ratelimit-limit a registry sent (Docker Hub pulls allowed per window)',
    labelNames: ['registry'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [host, figures] of live.rateLimits())
        if (figures.limit !== null) this.set({ registry: live.registryLabel(host) }, figures.limit);
    },
  });
  new Gauge({
    name: 'drp_build_info',
    aggregator: 'first',
    help: 'Always 1; the labels say which drp and Node.js are running',
    labelNames: ['version', 'nodejs_version'] as const,
    registers: [registry],
    collect() {
      this.set({ version: live.version, nodejs_version: process.version }, 1);
    },
  });
  new Gauge({
    name: 'drp_active_requests',
    help: 'Requests being served right now',
    registers: [registry],
    collect() {
      this.set(live.activeRequests());
    },
  });
  new Gauge({
    name: 'drp_open_tunnels',
    help: 'Raw tunnels open right now',
    registers: [registry],
    collect() {
      this.set(live.openTunnels());
    },
  });

  return { registry, requests, bytes, duration, store, tunnels, tunnelBytes, forwards, upstream };
}

export function createMetrics(events: CacheEvents, live: MetricsSources): ProxyMetrics {
  let made: Instruments | undefined;
  let pending: ((m: Instruments) => void)[] = [];
  const materialize = (): Instruments => {
    if (!made) {
      made = instruments(live);
      for (const op of pending) op(made);
      pending = [];
    }
    return made;
  };
  const record = (op: (m: Instruments) => void) => {
    if (made) op(made);
    else if (pending.push(op) >= MAX_PENDING) materialize();
  };
  // Labels are worked out now (the registry label is configuration; an outcome is not kept).
  const cacheEvent = (event: string, kind: string) => record((m) => m.store.inc({ event, kind }));

  const listeners = {
    hit: (e: { kind: string }) => cacheEvent('hit', e.kind),
    miss: (e: { kind: string }) => cacheEvent('miss', e.kind),
    store: (e: { kind: string }) => cacheEvent('store', e.kind),
    evict: () => cacheEvent('evict', 'any'),
    'verify-failed': () => cacheEvent('verify-failed', 'blob'),
    stale: () => cacheEvent('stale', 'manifest'),
    'store-skipped': () => cacheEvent('store-skipped', 'any'),
    upstream: (e: UpstreamEvent) => {
      const labels = {
        registry: live.registryLabel(e.registry),
        status_class: e.status === undefined ? 'error' : `${Math.floor(e.status / 100)}xx`,
      };
      record((m) => m.upstream.inc(labels));
    },
  } as const;
  for (const [name, fn] of Object.entries(listeners)) events.on(name as 'hit', fn as () => void);

  return {
    get registry() {
      return materialize().registry;
    },
    request(o) {
      const labels = {
        cache_status: o.cacheStatus,
        request_type: o.requestType,
        status_class: `${Math.floor(o.status / 100)}xx`,
        registry: live.registryLabel(o.registry),
      };
      const { cacheStatus, requestType, bytes } = o;
      const seconds = o.totalMs / 1000;
      record((m) => {
        m.requests.inc(labels);
        m.bytes.inc({ cache_status: cacheStatus }, bytes);
        m.duration.observe({ request_type: requestType }, seconds);
      });
    },
    tunnel(r) {
      const { bytesIn, bytesOut } = r;
      const result = r.error ? 'error' : 'ok';
      record((m) => {
        m.tunnels.inc({ result });
        m.tunnelBytes.inc({ direction: 'in' }, bytesIn);
        m.tunnelBytes.inc({ direction: 'out' }, bytesOut);
      });
    },
    forward(r) {
      const statusClass = `${Math.floor(r.status / 100)}xx`;
      record((m) => m.forwards.inc({ status_class: statusClass }));
    },
    async render() {
      const { registry } = materialize();
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
    close() {
      for (const [name, fn] of Object.entries(listeners)) events.off(name as 'hit', fn as () => void);
      made?.registry.clear();
      pending = [];
    },
  };
}
