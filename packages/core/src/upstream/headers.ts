import type { IncomingHttpHeaders } from 'node:http';

/** Request headers as drp builds them for upstream (undefined: not sent). */
export type HeaderMap = Record<string, string | string[] | undefined>;

/** Hop-by-hop headers (RFC 9110 §7.6.1) plus proxy headers: never forwarded either way. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
]);

/** Copies end-to-end headers, dropping hop-by-hop ones and any named in `Connection`. */
export function endToEndHeaders(headers: IncomingHttpHeaders): HeaderMap {
  const named = new Set(
    String(headers.connection ?? '')
      .split(',')
      .map((h) => h.trim().toLowerCase())
      .filter(Boolean),
  );
  const out: HeaderMap = {};
  for (const [key, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(key) || named.has(key)) continue;
    out[key] = value;
  }
  return out;
}

export function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** True when a request carries a body to forward (chunked, or a non-zero Content-Length). */
export function requestHasBody(headers: IncomingHttpHeaders): boolean {
  if (headers['transfer-encoding'] !== undefined) return true;
  const length = headers['content-length'];
  return length !== undefined && length !== '0';
}
