/**
 * Prometheus metrics from the cache's events and the proxy's tunnels, in a registry owned by
 * one proxy instance (never prom-client's global one, so several proxies can share a process).
 */
import type { CacheEvents, RequestOutcome } from '@drp/core';
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

export function createMetrics(
  events: CacheEvents,
  live: { activeRequests: () => number; openTunnels: () => number },
): ProxyMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'drp_' });

  const requests = new Counter({
    name: 'drp_requests_total',
    help: 'Registry requests served, by cache status and request type',
    labelNames: ['cache_status', 'request_type', 'status_class'] as const,
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
  } as const;
  for (const [name, fn] of Object.entries(listeners)) events.on(name as 'hit', fn as () => void);

  return {
    registry,
    request(o) {
      const statusClass = `${Math.floor(o.status / 100)}xx`;
      requests.inc({ cache_status: o.cacheStatus, request_type: o.requestType, status_class: statusClass });
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
