// The status page in a real browser (Debian's chromium, driven by playwright-core) after real
// pulls through the daemon, /status.json against the access log, and /metrics against the
// Grafana dashboard in deploy/grafana/. DRP_STATUS_SCREENSHOT=path also writes the screenshot
// there (docs/img/status.png is made that way).
import assert from 'node:assert/strict';
import { copyFile, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { chromium } from 'playwright-core';
import { startHubFront } from '../fakes/hub-front.ts';
import { startTokenServer } from '../fakes/token-server.ts';
import { createHarness } from '../harness/index.ts';
import { get, type LogLine, ROOT, registryNamed, startDaemon } from './daemon-lib.ts';

const CHROMIUM_FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

interface Status {
  hits: number;
  misses: number;
  bytesFromCache: number;
  bytesFromUpstream: number;
  cacheBytes: number;
  cacheEntries: number;
  cacheMaxBytes: number;
  requests: number;
  topRepositories: { repository: string; bytes: number }[];
  registries: Record<
    string,
    {
      requests: number;
      errors: number;
      rateLimitRemaining: number | null;
      rateLimitLimit: number | null;
      rateLimitSeenAt: string | null;
    }
  >;
  timeline: { hits: number; misses: number }[];
  ca: { fingerprint256: string; notAfter: string };
  version: string;
}

test('status page, status.json and metrics after real pulls; checked in headless Chromium', async (t) => {
  const h = createHarness(t);
  const ca = await h.testCA();
  const registry = await registryNamed(h, 'registry.test');
  const behindHub = await h.startRegistry();
  const tokens = await startTokenServer(h, {
    service: 'registry.docker.io',
    issuer: 'auth.docker.io',
    users: {},
    publicRepos: ['library/app'],
    names: ['auth.test'],
  });
  const hub = await startHubFront(h, { upstream: behindHub, tokens, limit: 200 });
  const [app, tool, hubApp] = await Promise.all([
    h.createImage({ layers: [1_500_000, 500_000] }),
    h.createImage({ layers: [300_000] }),
    h.createImage({ layers: [250_000] }),
  ]);
  await registry.push(app, 'team/app:v1');
  await registry.push(tool, 'team/tool:v1');
  await behindHub.push(hubApp, 'library/app:latest');
  const hubRef = `hub.test:${hub.port}`;
  const drp = await startDaemon(h, {
    REGISTRIES: `${registry.named} ${hubRef} auth.test:${tokens.port}`,
    UPSTREAM_MAPPINGS: 'registry.test=127.0.0.1 hub.test=127.0.0.1 auth.test=127.0.0.1',
    UPSTREAM_CA_FILE: ca.certPath,
    CACHE_DIR: h.tempDir('cache'),
    CA_DIR: h.tempDir('ca'),
    CACHE_MAX_SIZE: '512m',
  });
  const via = { proxy: drp.url, certDir: drp.certDir };
  await h.pullImage(registry.named, 'team/app:v1', via);
  await h.pullImage(registry.named, 'team/app:v1', via);
  await h.pullImage(registry.named, 'team/app:v1', via);
  await h.pullImage(registry.named, 'team/tool:v1', via);
  await h.pullImage(hubRef, 'library/app:latest', { ...via, creds: null });

  // status.json: totals agree with the access log line for line.
  const status = JSON.parse((await get(`${drp.url}/status.json`)).body) as Status;
  const lines = drp.requests();
  const fromCache = (l: LogLine) => ['HIT', 'STALE', 'REVALIDATED'].includes(String(l.upstream_cache_status));
  const sum = (ls: LogLine[]) => ls.reduce((s, l) => s + Number(l.bytes_sent), 0);
  assert.equal(status.requests, lines.length);
  assert.equal(status.bytesFromCache, sum(lines.filter(fromCache)));
  assert.equal(status.bytesFromUpstream, sum(lines.filter((l) => !fromCache(l))));
  const blobHits = lines.filter(
    (l) => l.request_type === 'blob-by-digest' && l.upstream_cache_status === 'HIT',
  );
  assert.equal(blobHits.length, 2 * 3, 'two warm pulls of three blobs');
  assert.ok(status.hits >= blobHits.length && status.misses >= 3 + 2 + 2, JSON.stringify(status));
  assert.ok(status.bytesFromCache >= 2 * app.totalSize - 2 * app.manifest.length);
  assert.equal(status.cacheMaxBytes, 512 * 1024 ** 2);
  assert.ok(
    status.cacheBytes >= app.totalSize + tool.totalSize + hubApp.totalSize - 3 * 4096,
    String(status.cacheBytes),
  );
  assert.equal(status.topRepositories[0]?.repository, `${registry.named}/team/app`);
  const hubHealth = status.registries[hubRef];
  assert.ok(hubHealth, Object.keys(status.registries).join(' '));
  assert.equal(hubHealth.rateLimitLimit, 200);
  assert.ok(hubHealth.rateLimitRemaining !== null && hubHealth.rateLimitRemaining < 200);
  assert.ok(hubHealth.rateLimitSeenAt);
  assert.equal(status.registries[registry.named]?.errors, 0);
  assert.equal(
    status.timeline.reduce((s, p) => s + p.hits, 0),
    status.hits,
  );

  // The page in Chromium shows the same figures.
  const shots = h.tempDir('screenshots');
  const browser = await chromium.launchPersistentContext(h.tempDir('chromium-profile'), {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: { width: 1280, height: 1000 },
  });
  h.defer(() => browser.close());
  const page = await browser.newPage();
  const response = await page.goto(`${drp.url}/status`);
  assert.equal(response?.status(), 200);
  assert.equal(await page.title(), 'drp status');
  // Locators, not page.evaluate: tsx's transform would put helpers into the browser's code.
  const text = async (selector: string) => (await page.locator(selector).first().textContent()) ?? '';
  const bytes = async (id: string) => Number(await page.locator(`#${id}`).getAttribute('data-bytes'));
  const hitRects = page.locator('#timeline rect.hit');
  const heights = await Promise.all(
    (await hitRects.all()).map(async (r) => Number(await r.getAttribute('height'))),
  );
  const registryRows = await Promise.all(
    (await page.locator('#registries tr[data-registry]').all()).map(async (r) => ({
      host: await r.getAttribute('data-registry'),
      text: (await r.textContent()) ?? '',
    })),
  );
  const shown = {
    hits: await text('#hits'),
    misses: await text('#misses'),
    ratio: await text('#hit-ratio'),
    fromCache: await bytes('bytes-from-cache'),
    fromUpstream: await bytes('bytes-from-upstream'),
    cacheBytes: await bytes('cache-size'),
    cacheMax: await text('#cache-max'),
    fingerprint: await text('#ca-fingerprint'),
    version: await text('#version'),
    bars: heights.length,
    barHeights: heights.reduce((a, b) => a + b, 0),
    topRepo: await text('#top-repositories tbody tr td'),
    registryRows,
    refresh: await page.locator('meta[http-equiv="refresh"]').getAttribute('content'),
  };
  assert.equal(shown.hits, String(status.hits));
  assert.equal(shown.misses, String(status.misses));
  assert.equal(shown.ratio, `${((status.hits / (status.hits + status.misses)) * 100).toFixed(1)}%`);
  assert.equal(shown.fromCache, status.bytesFromCache);
  assert.equal(shown.fromUpstream, status.bytesFromUpstream);
  assert.equal(shown.cacheBytes, status.cacheBytes);
  assert.equal(shown.cacheMax, '512.0 MiB');
  assert.equal(shown.fingerprint, status.ca.fingerprint256);
  assert.equal(shown.version, status.version);
  assert.equal(shown.bars, 60, 'one bar per minute of the last hour');
  assert.ok(shown.barHeights > 0, 'the hits are drawn');
  assert.equal(shown.refresh, '10');
  assert.equal(shown.topRepo, `${registry.named}/team/app`);
  const hubRow = shown.registryRows.find((r) => r.host === hubRef);
  assert.ok(hubRow, JSON.stringify(shown.registryRows));
  assert.match(hubRow.text, new RegExp(`${hubHealth.rateLimitRemaining} / 200`));
  assert.ok(shown.registryRows.some((r) => r.host === registry.named));
  const screenshot = join(shots, 'status.png');
  await page.screenshot({ path: screenshot, fullPage: true });
  const png = await readFile(screenshot);
  assert.equal(png.subarray(1, 4).toString(), 'PNG');
  assert.ok((await stat(screenshot)).size > 10_000);
  if (process.env.DRP_STATUS_SCREENSHOT) await copyFile(screenshot, process.env.DRP_STATUS_SCREENSHOT);

  // Metrics: standard process names, the new gauges, a bounded registry label.
  const metrics = (await get(`${drp.url}/metrics`)).body;
  for (const name of [
    'process_cpu_user_seconds_total',
    'process_resident_memory_bytes',
    'nodejs_heap_size_used_bytes',
    'nodejs_eventloop_lag_seconds',
  ]) {
    assert.match(metrics, new RegExp(`^${name} `, 'm'), name);
  }
  assert.doesNotMatch(metrics, /^drp_process_|^drp_nodejs_/m);
  assert.match(metrics, new RegExp(`^drp_cache_bytes ${status.cacheBytes}$`, 'm'));
  assert.match(metrics, new RegExp(`^drp_cache_entries ${status.cacheEntries}$`, 'm'));
  assert.match(metrics, new RegExp(`^drp_cache_max_bytes ${512 * 1024 ** 2}$`, 'm'));
  const expiry = Math.floor(Date.parse(status.ca.notAfter) / 1000);
  assert.match(metrics, new RegExp(`^drp_ca_expiry_timestamp_seconds ${expiry}$`, 'm'));
  assert.match(
    metrics,
    new RegExp(
      `^drp_upstream_ratelimit_remaining\\{registry="${hubRef}"\\} ${hubHealth.rateLimitRemaining}$`,
      'm',
    ),
  );
  assert.match(
    metrics,
    new RegExp(`^drp_build_info\\{version="${status.version}",nodejs_version="v[\\d.]+"\\} 1$`, 'm'),
  );
  const registryLabels = new Set([...metrics.matchAll(/registry="([^"]+)"/g)].map((m) => m[1]));
  for (const label of registryLabels) {
    assert.ok([registry.named, hubRef, `auth.test:${tokens.port}`, 'other'].includes(label ?? ''), label);
  }
  assert.ok(registryLabels.has(registry.named));

  // Every series the Grafana dashboard queries exists.
  const dashboard = JSON.parse(await readFile(join(ROOT, 'deploy/grafana/drp-dashboard.json'), 'utf8')) as {
    panels: { targets?: { expr: string }[] }[];
  };
  // Declared (# TYPE) counts: a counter nothing has incremented yet still exists.
  const exported = new Set<string>();
  for (const [, name, type] of metrics.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    exported.add(name ?? '');
    if (type === 'histogram')
      for (const suffix of ['_bucket', '_sum', '_count']) exported.add(`${name}${suffix}`);
  }
  const queried = new Set(
    dashboard.panels.flatMap((p) =>
      (p.targets ?? []).flatMap((tg) =>
        [...tg.expr.matchAll(/\b((?:drp|process|nodejs)_[a-z_]+)\b/g)].map((m) => m[1] ?? ''),
      ),
    ),
  );
  assert.ok(queried.size >= 10, [...queried].join(' '));
  for (const name of queried)
    assert.ok(exported.has(name), `${name} is queried by the dashboard but not exported`);
});
