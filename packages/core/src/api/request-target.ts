/**
 * The one reading of a request target. Everything downstream (routing, the method policy,
 * credential injection, the upstream URL, logs) uses what this returns, so no part of drp can
 * see `/v2/...` where the upstream would see something else.
 *
 * The path is percent-decoded exactly once and must come out canonical: only the characters a
 * URI path may hold literally (RFC 3986 `pchar` without `%`), no encoded `/`, `\` or `%`, no
 * empty segment before the last one, no `.` or `..` segment. The decoded path is then also the
 * encoded one, and is what goes upstream: the registry parses the same bytes drp routed.
 * The query is kept as sent (it never names the resource) but must be printable ASCII.
 */
import { DrpError } from './errors.js';

export interface RequestTarget {
  /** The canonical path, decoded (and therefore also valid as sent). */
  readonly pathname: string;
  /** The raw query without `?`, or undefined when there was none. */
  readonly query: string | undefined;
  /** `pathname` plus `?query`: what is sent upstream. */
  readonly pathAndQuery: string;
}

/** Longest request target drp reads (Node caps the whole head at 16 KiB anyway). */
export const MAX_TARGET_LENGTH = 8192;

/** RFC 3986 pchar minus `%`: unreserved, sub-delims, `:` and `@`, plus the `/` separator. */
const CANONICAL_PATH = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/]*$/;
/** Printable ASCII without `#` (a fragment never reaches a server) and without space. */
const QUERY = /^[\x21-\x22\x24-\x7e]*$/;

function invalid(message: string): DrpError {
  return new DrpError('DRP_PATH_INVALID', message);
}

function decodeOnce(raw: string): string {
  if (!raw.includes('%')) return raw;
  let out = '';
  for (let i = 0; i < raw.length; i += 1) {
    const ch = raw[i] as string;
    if (ch !== '%') {
      out += ch;
      continue;
    }
    const hex = raw.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw invalid('malformed percent-encoding in path');
    const decoded = String.fromCharCode(Number.parseInt(hex, 16));
    // An encoded separator or escape would be read differently by whoever decodes next.
    if (decoded === '/' || decoded === '\\' || decoded === '%') {
      throw invalid(`encoded "${decoded}" in path`);
    }
    out += decoded;
    i += 2;
  }
  return out;
}

/** Parses an origin-form request target (`/path?query`). Throws DRP_PATH_INVALID (400). */
export function parseRequestTarget(raw: string): RequestTarget {
  if (raw.length === 0 || raw[0] !== '/') throw invalid('request target must be an absolute path');
  if (raw.length > MAX_TARGET_LENGTH) throw invalid('request target too long');
  const queryAt = raw.indexOf('?');
  const rawPath = queryAt === -1 ? raw : raw.slice(0, queryAt);
  const query = queryAt === -1 ? undefined : raw.slice(queryAt + 1);
  if (query !== undefined && !QUERY.test(query)) throw invalid('invalid characters in query');

  const pathname = decodeOnce(rawPath);
  if (!CANONICAL_PATH.test(pathname)) throw invalid('invalid characters in path');
  const segments = pathname.split('/');
  // segments[0] is the empty string before the leading slash.
  for (let i = 1; i < segments.length; i += 1) {
    const segment = segments[i] as string;
    if (segment === '.' || segment === '..') throw invalid('dot segments are not allowed in paths');
    if (segment === '' && i < segments.length - 1) throw invalid('empty path segment ("//")');
  }
  return {
    pathname,
    query,
    pathAndQuery: query === undefined ? pathname : `${pathname}?${query}`,
  };
}

/** A printable, bounded rendering of a target that failed to parse, for logs (no query). */
export function describeRawTarget(raw: string): string {
  const path = raw.split('?')[0] ?? '';
  const printable = path.replace(/[^\x21-\x7e]/g, '?');
  return printable.length > 200 ? `${printable.slice(0, 197)}...` : printable;
}
