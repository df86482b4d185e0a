/**
 * Prometheus metrics from the cache's events and the proxy's tunnels, in a registry owned by
 * one proxy instance (never prom-client's global one, so several proxies can share a process).
 * Node's process metrics keep their standard names (`process_*`, `nodejs_*`) so stock
 * dashboards work; drp's own start with `drp_`. The `registry` label only takes configured
 * registries (REGISTRIES, Docker Hub's hosts) and `other`, so its cardinality is bounded.
 * `aggregator`: how WORKERS=N merges a gauge across workers (cluster/aggregate.ts); figures each
 * worker reads from the one cache directory or CA take the max, the rest sum.
 */
import type { CacheEvents, RequestOutcome, UpstreamEvent } from '@drp/core';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { ForwardRecord, TunnelRecord } from './mitm.js';

export interface ProxyMetrics {
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

export function createMetrics(events: CacheEvents, live: MetricsSources): ProxyMetrics {
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

  const listeners = {
    hit: (e: { kind: string }) => store.inc({ event: 'hit', kind: e.kind }),
    miss: (e: { kind: string }) => store.inc({ event: 'miss', kind: e.kind }),
    store: (e: { kind: string }) => store.inc({ event: 'store', kind: e.kind }),
    evict: () => store.inc({ event: 'evict', kind: 'any' }),
    'verify-failed': () => store.inc({ event: 'verify-failed', kind: 'blob' }),
    stale: () => store.inc({ event: 'stale', kind: 'manifest' }),
    'store-skipped': () => store.inc({ event: 'store-skipped', kind: 'any' }),
    upstream: (e: UpstreamEvent) =>
      upstream.inc({
        registry: live.registryLabel(e.registry),
        status_class: e.status === undefined ? 'error' : `${Math.floor(e.status / 100)}xx`,
      }),
  } as const;
  for (const [name, fn] of Object.entries(listeners)) events.on(name as 'hit', fn as () => void);

  return {
    registry,
    request(o) {
      const statusClass = `${Math.floor(o.status / 100)}xx`;
      requests.inc({
        cache_status: o.cacheStatus,
        request_type: o.requestType,
        status_class: statusClass,
        registry: live.registryLabel(o.registry),
      });
      bytes.inc({ cache_status: o.cacheStatus }, o.bytes);
      duration.observe({ request_type: o.requestType }, o.totalMs / 1000);
    },
    tunnel(r) {
      tunnels.inc({ result: r.error ? 'error' : 'ok' });
      tunnelBytes.inc({ direction: 'in' }, r.bytesIn);
      tunnelBytes.inc({ direction: 'out' }, r.bytesOut);
    },
    forward(r) {
      forwards.inc({ status_class: `${Math.floor(r.status / 100)}xx` });
    },
    async render() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
    close() {
      for (const [name, fn] of Object.entries(listeners)) events.off(name as 'hit', fn as () => void);
      registry.clear();
    },
  };
}
