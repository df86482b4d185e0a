/**
 * `GET /status` (HTML) and `GET /status.json`: what an operator keeps open. Server-rendered
 * from the same report, no scripts and no build step; the page reloads itself every
 * REFRESH_SECONDS. The plot is inline SVG: hits and misses per minute over the last hour.
 */

import { humanBytes } from './commands/output.js';
import type { StatusFigures, TimelinePoint } from './stats.js';

export const REFRESH_SECONDS = 10;

export interface StatusReport extends StatusFigures {
  readonly version: string;
  readonly startedAt: string;
  readonly uptimeSeconds: number;
  readonly cacheBytes: number;
  readonly cacheEntries: number;
  /** CACHE_MAX_SIZE in bytes. */
  readonly cacheMaxBytes: number;
  readonly ca: { readonly fingerprint256: string; readonly notAfter: string };
  readonly intercepting: readonly string[];
}

function esc(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Byte counts as the operator tools print them (one formatter for both). */
export const formatBytes = humanBytes;

function formatDuration(seconds: number): string {
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = Math.floor(seconds % 60);
  return d > 0 ? `${d}d ${h}h ${m}m` : h > 0 ? `${h}h ${m}m` : m > 0 ? `${m}m ${s}s` : `${s}s`;
}

function percent(ratio: number | null): string {
  return ratio === null ? '–' : `${(ratio * 100).toFixed(1)}%`;
}

/** Stacked bars, one per minute: hits below, misses on top. */
function timelineSvg(points: readonly TimelinePoint[]): string {
  const width = 600;
  const height = 120;
  const barWidth = width / points.length;
  const peak = Math.max(1, ...points.map((p) => p.hits + p.misses));
  const bars = points
    .map((p, i) => {
      const x = (i * barWidth).toFixed(1);
      const hitH = (p.hits / peak) * (height - 10);
      const missH = (p.misses / peak) * (height - 10);
      const title = `<title>${esc(p.at.slice(11, 16))} UTC: ${p.hits} hits, ${p.misses} misses</title>`;
      return (
        `<g>${title}<rect class="hit" x="${x}" y="${(height - hitH).toFixed(1)}" width="${(barWidth - 1).toFixed(1)}" height="${hitH.toFixed(1)}"/>` +
        `<rect class="miss" x="${x}" y="${(height - hitH - missH).toFixed(1)}" width="${(barWidth - 1).toFixed(1)}" height="${missH.toFixed(1)}"/></g>`
      );
    })
    .join('');
  return `<svg id="timeline" viewBox="0 0 ${width} ${height}" width="100%" height="${height}" preserveAspectRatio="none" role="img" aria-label="hits and misses per minute, last hour"><line x1="0" y1="${height}" x2="${width}" y2="${height}" class="axis"/>${bars}</svg>
<div class="legend"><span class="swatch hit"></span> hits <span class="swatch miss"></span> misses · per minute, last 60 minutes (peak ${peak})</div>`;
}

function bar(fraction: number): string {
  const pct = Math.max(0, Math.min(1, fraction)) * 100;
  return `<div class="bar"><div style="width:${pct.toFixed(1)}%"></div></div>`;
}

function rows(entries: [string, string | number][]): string {
  return entries.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join('');
}

export function renderStatusPage(r: StatusReport): string {
  const total = r.bytesFromCache + r.bytesFromUpstream;
  const caDays = Math.floor((Date.parse(r.ca.notAfter) - Date.now()) / 86_400_000);
  const registries = Object.entries(r.registries);
  const registryRows = registries.length
    ? registries
        .map(([host, h]) => {
          const rate =
            h.rateLimitRemaining === null
              ? '–'
              : `${h.rateLimitRemaining}${h.rateLimitLimit === null ? '' : ` / ${h.rateLimitLimit}`} <small>at ${esc(h.rateLimitSeenAt?.slice(11, 19))} UTC</small>`;
          const err =
            h.lastError === null
              ? '–'
              : `${esc(h.lastError)} <small>at ${esc(h.lastErrorAt?.slice(11, 19))} UTC</small>`;
          return `<tr data-registry="${esc(host)}"><td>${esc(host)}</td><td class="n">${h.requests}</td><td class="n">${h.errors}</td><td class="n">${h.rateLimited}</td><td>${rate}</td><td>${err}</td></tr>`;
        })
        .join('')
    : '<tr><td colspan="6">no upstream requests yet</td></tr>';
  const repoRows = r.topRepositories.length
    ? r.topRepositories
        .map(
          (x) =>
            `<tr><td>${esc(x.repository)}</td><td class="n">${esc(formatBytes(x.bytes))}</td><td class="n">${x.requests}</td></tr>`,
        )
        .join('')
    : '<tr><td colspan="3">no requests yet</td></tr>';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="${REFRESH_SECONDS}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>drp status</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f5f6f8;color:#1d2330}
header{background:#1d2330;color:#fff;padding:12px 24px;display:flex;gap:24px;align-items:baseline}
header h1{font-size:18px;margin:0}header span{opacity:.75}
main{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:16px;padding:16px 24px}
section{background:#fff;border-radius:6px;padding:12px 16px;box-shadow:0 1px 2px #0002}
section.wide{grid-column:1/-1}
h2{font-size:13px;text-transform:uppercase;letter-spacing:.05em;color:#5b6475;margin:0 0 8px}
.big{font-size:32px;font-weight:600}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:3px 8px 3px 0;vertical-align:top}
th{font-weight:500;color:#5b6475;white-space:nowrap}td.n{text-align:right;font-variant-numeric:tabular-nums}
thead th{border-bottom:1px solid #ddd}
.bar{background:#e4e7ec;border-radius:3px;height:10px;margin:6px 0}.bar div{background:#3b82f6;height:100%;border-radius:3px}
svg .hit,.swatch.hit{fill:#22a06b;background:#22a06b}svg .miss,.swatch.miss{fill:#f59e0b;background:#f59e0b}
svg .axis{stroke:#999}.swatch{display:inline-block;width:10px;height:10px;border-radius:2px}
.legend{color:#5b6475;font-size:12px}small{color:#5b6475}
</style></head>
<body>
<header><h1>drp status</h1><span>version <b id="version">${esc(r.version)}</b></span><span>up <b id="uptime">${esc(formatDuration(r.uptimeSeconds))}</b> (since ${esc(r.startedAt.replace(/\.\d+Z$/, 'Z'))})</span><span>refreshes every ${REFRESH_SECONDS} s</span></header>
<main>
<section><h2>Hit ratio</h2><div class="big" id="hit-ratio">${esc(percent(r.hitRatio))}</div>
<table>${rows([
    ['hits', r.hits],
    ['misses', r.misses],
  ])
    .replace('<td>', '<td id="hits">')
    .replace(/(<th>misses<\/th>)<td>/, '$1<td id="misses">')}</table></section>
<section><h2>Bytes served</h2><div class="big" id="bytes-saved">${esc(formatBytes(r.bytesFromCache))}</div><div>from the cache: upstream traffic saved (${esc(percent(total === 0 ? null : r.bytesFromCache / total))} of all bytes)</div>
${bar(total === 0 ? 0 : r.bytesFromCache / total)}
<table><tr><th>from cache</th><td id="bytes-from-cache" data-bytes="${r.bytesFromCache}">${esc(formatBytes(r.bytesFromCache))}</td></tr><tr><th>from upstream</th><td id="bytes-from-upstream" data-bytes="${r.bytesFromUpstream}">${esc(formatBytes(r.bytesFromUpstream))}</td></tr></table></section>
<section><h2>Cache</h2><div class="big" id="cache-size" data-bytes="${r.cacheBytes}">${esc(formatBytes(r.cacheBytes))}</div><div>of CACHE_MAX_SIZE <b id="cache-max">${esc(formatBytes(r.cacheMaxBytes))}</b> · <span id="cache-entries">${r.cacheEntries}</span> entries</div>
${bar(r.cacheMaxBytes === 0 ? 0 : r.cacheBytes / r.cacheMaxBytes)}</section>
<section class="wide"><h2>Hits and misses, last hour</h2>${timelineSvg(r.timeline)}</section>
<section><h2>Requests by type</h2><table id="requests-by-type"><thead><tr><th>type</th><th class="n">requests</th></tr></thead>${Object.entries(
    r.requestsByType,
  )
    .map(([k, v]) => `<tr><td>${esc(k)}</td><td class="n">${v}</td></tr>`)
    .join('')}<tr><th>total</th><td class="n" id="requests">${r.requests}</td></tr></table>
<table><thead><tr><th>cache status</th><th class="n">requests</th></tr></thead>${Object.entries(
    r.requestsByCacheStatus,
  )
    .map(([k, v]) => `<tr><td>${esc(k)}</td><td class="n">${v}</td></tr>`)
    .join('')}</table></section>
<section><h2>Top repositories by bytes</h2><table id="top-repositories"><thead><tr><th>repository</th><th class="n">bytes</th><th class="n">requests</th></tr></thead>${repoRows}</table></section>
<section class="wide"><h2>Upstream registries</h2><table id="registries"><thead><tr><th>registry</th><th class="n">requests</th><th class="n">errors</th><th class="n">429s</th><th>rate limit remaining / limit</th><th>last error</th></tr></thead>${registryRows}</table></section>
<section><h2>CA</h2><table>${rows([
    ['SHA-256', r.ca.fingerprint256],
    ['expires', `${r.ca.notAfter} (${caDays} days)`],
  ]).replace('<td>', '<td id="ca-fingerprint" style="word-break:break-all">')}</table></section>
<section><h2>Intercepting</h2><div>${r.intercepting.map(esc).join(' ')}</div><p><a href="/status.json">status.json</a> · <a href="/metrics">metrics</a> · <a href="/ca.crt">ca.crt</a></p></section>
</main></body></html>
`;
}
