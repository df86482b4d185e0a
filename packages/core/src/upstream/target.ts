/** Which registry a request is for: taken from the CONNECT target, never from `Host`. */
export interface UpstreamTarget {
  readonly host: string;
  readonly port: number;
  /** Default `https`. Plain `http` exists for registries reached by absolute-form proxy requests. */
  readonly protocol?: 'https' | 'http';
  /**
   * `drp`: a client that sends no credentials never saw this registry's challenge (mirror mode:
   * drp answered its ping), so drp answers a Bearer 401 itself (upstream/bearer.ts). Default
   * `client`: challenges go to the client, which fetches its own token.
   */
  readonly tokens?: 'client' | 'drp';
}

const DEFAULT_PORTS = { https: 443, http: 80 } as const;

/** `host:port`, with IPv6 literals bracketed. Used in cache keys, logs and mappings. */
export function targetKey(target: UpstreamTarget): string {
  return `${formatHost(target.host)}:${target.port}`;
}

/** The authority as a URL or `Host` header would show it (default port omitted). */
export function targetAuthority(target: UpstreamTarget): string {
  const protocol = target.protocol ?? 'https';
  const host = formatHost(target.host);
  return target.port === DEFAULT_PORTS[protocol] ? host : `${host}:${target.port}`;
}

export function targetOrigin(target: UpstreamTarget): string {
  return `${target.protocol ?? 'https'}://${targetAuthority(target)}`;
}

function formatHost(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

/**
 * Parses `host`, `host:port`, `[v6]` or `[v6]:port`. Returns undefined for anything else.
 * Hostnames are lower-cased: DNS is case-insensitive and keys must not split on case.
 */
export function parseHostPort(value: string, defaultPort = 443): { host: string; port: number } | undefined {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s/]+))(?::(\d{1,5}))?$/.exec(value.trim());
  if (!match) return undefined;
  const host = (match[1] ?? match[2] ?? '').toLowerCase();
  if (!host) return undefined;
  if (match[3] === undefined) return { host, port: defaultPort };
  const port = Number(match[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host, port };
}
