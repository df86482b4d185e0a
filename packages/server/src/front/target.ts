/**
 * The proxy's request targets, parsed once and strictly: a CONNECT target (`host:port`,
 * `[v6]:port`) and an absolute-form URL (`http://host[:port]/path?query`). What does not fit
 * the grammar is refused (400) instead of being guessed at, so the router and the upstream
 * only ever see a plain host name or IP literal, a port from 1 to 65535, and the path exactly
 * as the client sent it (no WHATWG URL normalisation: core's own parser is the one reading of
 * a registry path; a second, different reading here would be a way around it).
 */
import { isIPv6 } from 'node:net';

export interface HostPort {
  /** Lower case, no trailing dot; IPv6 without brackets. */
  readonly host: string;
  readonly port: number;
}

export interface AbsoluteTarget extends HostPort {
  /** The origin-form path and query, byte for byte as received (`/` when the URL had none). */
  readonly path: string;
}

const IPV4 = /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/** A host name (LDH labels, `_` allowed), a dotted-quad IPv4 address, or a bracketed IPv6 one. */
export function parseHost(text: string): string | undefined {
  if (text.startsWith('[')) {
    const inner = /^\[([0-9a-fA-F:.]+)\]$/.exec(text)?.[1];
    return inner !== undefined && isIPv6(inner) ? inner.toLowerCase() : undefined;
  }
  const host = text.toLowerCase().replace(/\.$/, '');
  if (host.length === 0 || host.length > 253) return undefined;
  if (IPV4.test(host)) return host;
  const labels = host.split('.');
  if (!labels.every((l) => LABEL.test(l))) return undefined;
  // A name whose last label is a number would be read as an IPv4 address (127.1, 0x7f.1).
  if (/^(?:\d+|0x[0-9a-f]*)$/.test(labels[labels.length - 1] ?? '')) return undefined;
  return host;
}

function parsePort(text: string): number | undefined {
  if (!/^[1-9]\d{0,4}$/.test(text)) return undefined;
  const port = Number(text);
  return port <= 65535 ? port : undefined;
}

function parseAuthority(text: string, defaultPort: number | undefined): HostPort | undefined {
  const match = /^(\[[^\]]*\]|[^:[\]]*)(?::([^:]*))?$/.exec(text);
  if (!match) return undefined;
  const host = parseHost(match[1] ?? '');
  const port = match[2] === undefined ? defaultPort : parsePort(match[2]);
  if (host === undefined || port === undefined) return undefined;
  return { host, port };
}

/** A CONNECT request target: `host:port` or `[v6]:port`; the port is required. */
export function parseConnectTarget(url: string | undefined): HostPort | undefined {
  if (!url || url.length > 300) return undefined;
  return parseAuthority(url, undefined);
}

/**
 * An absolute-form request target. Only `http:` (https goes through CONNECT); no userinfo, no
 * fragment, nothing but visible ASCII in the path.
 */
export function parseAbsoluteTarget(url: string): AbsoluteTarget | { error: string } {
  const match = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/([^/?#]*)([^#]*)$/.exec(url);
  if (!match) return { error: 'bad request target' };
  if ((match[1] ?? '').toLowerCase() !== 'http') {
    return { error: 'only http:// URLs can be proxied without CONNECT' };
  }
  const authority = parseAuthority(match[2] ?? '', 80);
  if (!authority) return { error: 'bad host or port in the request target' };
  const rest = match[3] ?? '';
  if (!/^[!-~]*$/.test(rest) || (rest !== '' && !rest.startsWith('/') && !rest.startsWith('?'))) {
    return { error: 'bad path in the request target' };
  }
  const path = rest === '' ? '/' : rest.startsWith('?') ? `/${rest}` : rest;
  return { ...authority, path };
}
