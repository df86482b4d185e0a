/**
 * `Range` and `If-Range` for blobs (RFC 9110 §14): a single byte range is honoured; several
 * ranges are answered with the whole blob (allowed, and what registries do); an unsatisfiable
 * range is 416. `If-Range` must match the blob's strong ETag, otherwise the whole blob is sent.
 */
import type { IncomingHttpHeaders } from 'node:http';

export type RangeResult =
  | { readonly kind: 'full' }
  | { readonly kind: 'partial'; readonly start: number; readonly end: number }
  | { readonly kind: 'unsatisfiable' };

const FULL: RangeResult = { kind: 'full' };

/** Parses one `Range` header value against a known size. `end` is inclusive. */
export function parseRange(header: string | undefined, size: number): RangeResult {
  if (header === undefined) return FULL;
  const match = /^\s*bytes\s*=\s*(.*)$/i.exec(header);
  if (!match) return FULL; // unknown unit: ignore the header
  const specs = (match[1] ?? '').split(',').filter((s) => s.trim() !== '');
  if (specs.length !== 1) return FULL;
  const spec = /^\s*(\d*)\s*-\s*(\d*)\s*$/.exec(specs[0] ?? '');
  if (!spec) return FULL;
  const [, first = '', last = ''] = spec;
  if (first === '' && last === '') return FULL;
  if (first === '') {
    // Suffix range: the last N bytes.
    const n = Number(last);
    if (n === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(first);
  if (!Number.isSafeInteger(start) || start >= size) return { kind: 'unsatisfiable' };
  let end = last === '' ? size - 1 : Number(last);
  if (!Number.isSafeInteger(end) || end < start) return FULL; // invalid: ignore
  end = Math.min(end, size - 1);
  return { kind: 'partial', start, end };
}

/** The ETag drp gives a blob: its digest, strong. */
export function blobEtag(digest: string): string {
  return `"${digest}"`;
}

/** Applies `If-Range` (strong comparison; a date never matches, drp sends no Last-Modified). */
export function rangeFor(headers: IncomingHttpHeaders, size: number, etag: string): RangeResult {
  const range = headers.range;
  if (range === undefined) return FULL;
  const ifRange = headers['if-range'];
  if (ifRange !== undefined && String(ifRange).trim() !== etag) return FULL;
  return parseRange(range, size);
}

/** True when `If-None-Match` names this ETag (or `*`): the answer is 304. */
export function notModified(headers: IncomingHttpHeaders, etag: string): boolean {
  const value = headers['if-none-match'];
  if (value === undefined) return false;
  return value
    .split(',')
    .map((t) => t.trim().replace(/^W\//, ''))
    .some((t) => t === '*' || t === etag);
}
