/**
 * An upstream (corporate) HTTP proxy for drp's own connections: its parsed address, the
 * NO_PROXY rules that bypass it, and the errors it causes, named so that a log or an OCI
 * error body says which proxy failed, never with its password.
 *
 * NO_PROXY follows curl: comma-separated (spaces tolerated); `*` alone bypasses everything; a
 * bare host matches that host and its subdomains on any port; a leading `.` or `*.` matches
 * subdomains (and the host itself, as curl does); `host:port` matches that port only; a CIDR
 * (`10.0.0.0/8`, `fd00::/8`) or an IP literal matches IP-literal hosts.
 */
import { BlockList, isIP } from 'node:net';

export interface UpstreamProxy {
  /** `http:` only: drp speaks CONNECT to it in clear. */
  readonly url: URL;
  /** `http://host:port`, with no credentials: what logs and error messages show. */
  readonly display: string;
}

interface NameRule {
  readonly name: string;
  readonly port: number | undefined;
}

export interface NoProxy {
  /** True when connections to host:port go direct. `host` is the name asked for, not a mapping. */
  bypasses(host: string, port: number): boolean;
}

/** Parses `http://[user:pass@]host:port`. Returns a reason string when it is not one. */
export function parseUpstreamProxy(value: string): UpstreamProxy | string {
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    return 'an http://[user:password@]host:port URL';
  }
  if (url.protocol !== 'http:') return 'an http:// URL (drp talks to the proxy in clear, with CONNECT)';
  if (url.pathname !== '/' || url.search !== '' || url.hash !== '') {
    return 'an http://[user:password@]host:port URL without a path';
  }
  if (!url.hostname) return 'an http://[user:password@]host:port URL';
  const port = url.port || '80';
  return Object.freeze({ url, display: `http://${url.hostname}:${port}` });
}

/** Parses a NO_PROXY list. Returns a reason string for an entry it cannot read. */
export function parseNoProxy(value: string): NoProxy | string {
  const names: NameRule[] = [];
  const addresses = new BlockList();
  let everything = false;
  for (const raw of value.split(',')) {
    const entry = raw.trim().toLowerCase();
    if (entry === '') continue;
    if (entry === '*') {
      everything = true;
      continue;
    }
    const cidr = /^\[?([0-9a-f:.]+)\]?\/(\d{1,3})$/.exec(entry);
    if (cidr) {
      const address = cidr[1] ?? '';
      const prefix = Number(cidr[2]);
      const family = isIP(address);
      if (family === 0 || prefix > (family === 4 ? 32 : 128))
        return `a CIDR such as 10.0.0.0/8, got ${JSON.stringify(entry)}`;
      addresses.addSubnet(address, prefix, family === 4 ? 'ipv4' : 'ipv6');
      continue;
    }
    const bare = entry.replace(/^\[(.*)\]$/, '$1');
    if (isIP(bare) !== 0) {
      addresses.addAddress(bare, isIP(bare) === 4 ? 'ipv4' : 'ipv6');
      continue;
    }
    const match = /^(?:\*?\.)?([a-z0-9_](?:[a-z0-9_.-]*[a-z0-9_])?)(?::(\d{1,5}))?$/.exec(entry);
    if (!match) return `host names, .domains or CIDRs separated by commas, got ${JSON.stringify(entry)}`;
    names.push({ name: match[1] ?? '', port: match[2] === undefined ? undefined : Number(match[2]) });
  }
  return {
    bypasses(host, port) {
      if (everything) return true;
      const h = host
        .toLowerCase()
        .replace(/^\[(.*)\]$/, '$1')
        .replace(/\.$/, '');
      const family = isIP(h);
      if (family !== 0) return addresses.check(h, family === 4 ? 'ipv4' : 'ipv6') || nameHit(names, h, port);
      return nameHit(names, h, port);
    },
  };
}

function nameHit(rules: readonly NameRule[], host: string, port: number): boolean {
  return rules.some(
    (r) => (r.port === undefined || r.port === port) && (host === r.name || host.endsWith(`.${r.name}`)),
  );
}

/** Error code carried by transport errors the upstream proxy caused (see client.ts). */
export const PROXY_ERROR_CODE = 'DRP_UPSTREAM_PROXY';

/** Turns a failure of the CONNECT stage into an error that names the proxy and the target. */
export function proxyError(proxy: UpstreamProxy, target: string, cause: Error): Error {
  const status = /^Bad response: (\d{3})$/.exec(cause.message)?.[1];
  const code = (cause as { code?: string }).code;
  let why: string;
  if (status === '407') {
    why = proxy.url.username
      ? 'rejected the credentials in its URL (407 Proxy Authentication Required)'
      : 'asked for credentials (407 Proxy Authentication Required)';
  } else if (status !== undefined) why = `refused CONNECT ${target} with ${status}`;
  else if (cause.message === 'Proxy timeout') why = `did not answer CONNECT ${target} in time`;
  else why = `unreachable: ${code ?? cause.message}`;
  return Object.assign(new Error(`upstream proxy ${proxy.display} ${why}`), {
    code: PROXY_ERROR_CODE,
    cause,
  });
}
