// prom-client is made on the first scrape: what was recorded before it must all be there.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CacheEvents, type RequestOutcome } from '@drp/core';
import type { ForwardRecord, TunnelRecord } from '../src/front/types.ts';
import { createMetrics } from '../src/metrics.ts';

const outcome = (over: Partial<RequestOutcome>): RequestOutcome => ({
  method: 'GET',
  registry: 'registry.test:5000',
  path: '/v2/x/blobs/sha256:00',
  requestType: 'blob-by-digest',
  cacheStatus: 'HIT',
  status: 200,
  bytes: 1000,
  upstreamMs: undefined,
  totalMs: 30,
  error: undefined,
  aborted: false,
  ...over,
});

const tunnel: TunnelRecord = {
  type: 'tunnel',
  client: '127.0.0.1',
  host: 'example.test:443',
  bytesIn: 10,
  bytesOut: 20,
  ms: 5,
  error: undefined,
  notTls: false,
};
const forward = {
  type: 'forward',
  client: '127.0.0.1',
  method: 'GET',
  host: 'h',
  path: '/',
  status: 404,
  bytes: 0,
};

function metricsFor(events: CacheEvents) {
  return createMetrics(events, {
    activeRequests: () => 2,
    openTunnels: () => 1,
    cacheStats: () => ({ entries: 3, bytes: 4096, maxBytes: 8192 }),
    rateLimits: () => new Map(),
    registryLabel: (r) => (r === 'registry.test:5000' ? r : 'other'),
    caNotAfter: new Date(0),
    version: '0.0.0-test',
  });
}

test('counts recorded before the first scrape are all in it, and later ones add to them', async () => {
  const events = new CacheEvents('metrics-test');
  const metrics = metricsFor(events);
  metrics.request(outcome({}));
  metrics.request(outcome({ cacheStatus: 'MISS', bytes: 500, totalMs: 700, registry: 'elsewhere:443' }));
  metrics.tunnel(tunnel);
  metrics.forward(forward as unknown as ForwardRecord);
  events.emit('hit', { digest: 'sha256:00', size: 1, kind: 'blob' });
  events.emit('upstream', { registry: 'registry.test:5000', status: 200 } as never);

  const first = (await metrics.render()).body;
  const has = (line: string) => assert.ok(first.split('\n').includes(line), `${line}\n---\n${first}`);
  has(
    'drp_requests_total{cache_status="HIT",request_type="blob-by-digest",status_class="2xx",registry="registry.test:5000"} 1',
  );
  has(
    'drp_requests_total{cache_status="MISS",request_type="blob-by-digest",status_class="2xx",registry="other"} 1',
  );
  has('drp_response_bytes_total{cache_status="HIT"} 1000');
  has('drp_response_bytes_total{cache_status="MISS"} 500');
  has('drp_request_duration_seconds_bucket{le="0.02",request_type="blob-by-digest"} 0');
  has('drp_request_duration_seconds_bucket{le="0.1",request_type="blob-by-digest"} 1');
  has('drp_request_duration_seconds_bucket{le="2",request_type="blob-by-digest"} 2');
  has('drp_request_duration_seconds_sum{request_type="blob-by-digest"} 0.73');
  has('drp_request_duration_seconds_count{request_type="blob-by-digest"} 2');
  has('drp_tunnels_total{result="ok"} 1');
  has('drp_tunnel_bytes_total{direction="in"} 10');
  has('drp_tunnel_bytes_total{direction="out"} 20');
  has('drp_forwarded_requests_total{status_class="4xx"} 1');
  has('drp_cache_events_total{event="hit",kind="blob"} 1');
  has('drp_upstream_requests_total{registry="registry.test:5000",status_class="2xx"} 1');
  has('drp_active_requests 2');
  assert.match(first, /^process_cpu_user_seconds_total /m);

  metrics.request(outcome({}));
  events.emit('hit', { digest: 'sha256:00', size: 1, kind: 'blob' });
  const second = (await metrics.render()).body;
  assert.match(
    second,
    /^drp_requests_total\{cache_status="HIT",request_type="blob-by-digest",status_class="2xx",registry="registry.test:5000"\} 2$/m,
  );
  assert.match(second, /^drp_cache_events_total\{event="hit",kind="blob"\} 2$/m);
  metrics.close();
});

test('the registry is there for whoever asks for it before any scrape (WORKERS aggregation)', async () => {
  const events = new CacheEvents('metrics-test-2');
  const metrics = metricsFor(events);
  metrics.request(outcome({ cacheStatus: 'MISS' }));
  const json = await metrics.registry.getMetricsAsJSON();
  const requests = json.find((m) => m.name === 'drp_requests_total');
  assert.equal(requests?.values.length, 1);
  assert.equal(requests?.values[0]?.value, 1);
  metrics.close();
});

test('many recordings without a scrape stay bounded: the registry is made and keeps counting', async () => {
  const events = new CacheEvents('metrics-test-3');
  const metrics = metricsFor(events);
  for (let i = 0; i < 25_000; i += 1) metrics.request(outcome({ totalMs: 1 }));
  const body = (await metrics.render()).body;
  assert.match(body, /^drp_request_duration_seconds_count\{request_type="blob-by-digest"\} 25000$/m);
  metrics.close();
});
