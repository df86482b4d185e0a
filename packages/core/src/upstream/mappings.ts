/**
 * Upstream mappings (`UPSTREAM_MAPPINGS`, `upstream.mappings`): connect to another address for
 * a host, the original's users' #103. The one place that knows their rules, used by core's
 * agents, by the daemon's tunnels and forwards, and by config validation:
 *
 *   `host=address`            every port of host goes to address, on the port asked for
 *   `host:port=address`       that port of host goes to address, same port
 *   `host[:port]=addr:port`   ... to addr:port
 *
 * A `host:port` entry wins over a `host` entry. IPv6 literals are bracketed.
 */
import { parseHostPort } from './target.js';

/** Where a mapping sends a name; `port` 0: the port the request asked for. */
export interface MappedAddress {
  readonly host: string;
  readonly port: number;
}

/** Keys are `host` (every port) or `host:port`, host lower-cased and unbracketed. */
export type MappingTable = ReadonlyMap<string, MappedAddress>;

/** A mapping entry that is not `host[:port]` → `address[:port]`; the message is what was expected. */
export class MappingError extends Error {
  readonly code = 'DRP_CONFIG_INVALID';
  constructor(
    message: string,
    /** Which side was wrong: the name mapped, or the address it maps to. */
    readonly side: 'from' | 'to',
    readonly entry: string,
  ) {
    super(message);
    this.name = 'MappingError';
  }
}

export interface ParsedMappings {
  readonly table: MappingTable;
  /** The mapped names as `host` or `host:port` (IPv6 bracketed): exempt from blocked destinations. */
  readonly names: readonly string[];
}

/** Validates `{ from: to }` pairs into a lookup table. Throws MappingError. */
export function parseMappings(entries: Readonly<Record<string, string>>): ParsedMappings {
  const table = new Map<string, MappedAddress>();
  const names: string[] = [];
  for (const [from, to] of Object.entries(entries)) {
    const source = parseHostPort(from);
    if (!source) throw new MappingError('host or host:port', 'from', from);
    const hasPort = /:\d+$/.test(from.trim());
    const dest = parseHostPort(to, hasPort ? source.port : 0);
    if (!dest) throw new MappingError('address or address:port', 'to', to);
    table.set(hasPort ? `${source.host}:${source.port}` : source.host, dest);
    const name = source.host.includes(':') ? `[${source.host}]` : source.host;
    names.push(hasPort ? `${name}:${source.port}` : name);
  }
  return { table, names };
}

/** Parses space-separated `host[:port]=address[:port]` text into pairs. Throws MappingError. */
export function parseMappingList(text: string): Record<string, string> {
  const pairs: Record<string, string> = {};
  for (const entry of text.split(/\s+/).filter(Boolean)) {
    const [from = '', to = '', ...rest] = entry.split('=');
    if (rest.length > 0 || !parseHostPort(from) || !parseHostPort(to)) {
      throw new MappingError(
        `space-separated host[:port]=address[:port] entries, got ${JSON.stringify(entry)} (IPv6 in brackets)`,
        'from',
        entry,
      );
    }
    pairs[from] = to;
  }
  parseMappings(pairs);
  return pairs;
}

/** Where to connect for host:port, or undefined when no mapping applies. */
export function lookupMapping(table: MappingTable, host: string, port: number): MappedAddress | undefined {
  const key = host.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  const exact = table.get(`${key}:${port}`);
  if (exact) return exact;
  const anyPort = table.get(key);
  if (anyPort) return { host: anyPort.host, port: anyPort.port || port };
  return undefined;
}

/** `resolve(host, port)`: the mapped address, or host:port itself when nothing is mapped. */
export function createAddressResolver(
  entries: Readonly<Record<string, string>>,
): (host: string, port: number) => MappedAddress {
  const { table } = parseMappings(entries);
  return (host, port) => lookupMapping(table, host, port) ?? { host, port };
}
