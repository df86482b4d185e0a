/**
 * CIDR lists as net.BlockList: `10.0.0.0/8, fc00::/7 192.168.1.7` (commas and/or spaces; a bare
 * address is a /32 or /128). BlockList also matches IPv4-mapped IPv6 addresses
 * (`::ffff:127.0.0.1`) against IPv4 ranges, so a v6 socket's peer needs no rewriting to match.
 */
import { BlockList, isIP } from 'node:net';

export interface CidrList {
  /** The entries as written (normalised: always with a prefix length). */
  readonly entries: readonly string[];
  /** Whether `address` (IPv4, IPv6 or IPv4-mapped IPv6) lies in one of the ranges. */
  contains(address: string): boolean;
}

/** One CIDR entry, or undefined when it is not `address[/prefix]`. */
export function parseCidr(text: string): { address: string; prefix: number; family: 4 | 6 } | undefined {
  const match = /^\[?([0-9a-fA-F:.]+)\]?(?:\/(\d{1,3}))?$/.exec(text.trim());
  if (!match) return undefined;
  const address = match[1] ?? '';
  const family = isIP(address);
  if (family !== 4 && family !== 6) return undefined;
  const max = family === 4 ? 32 : 128;
  const prefix = match[2] === undefined ? max : Number(match[2]);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) return undefined;
  return { address: address.toLowerCase(), prefix, family };
}

/** Splits a comma/space separated list. */
export function splitList(text: string): string[] {
  return text.split(/[\s,]+/).filter(Boolean);
}

/** Builds a list; throws an Error naming the first bad entry. */
export function createCidrList(entries: readonly string[]): CidrList {
  const list = new BlockList();
  const normalised: string[] = [];
  for (const entry of entries) {
    const cidr = parseCidr(entry);
    if (!cidr) throw new Error(`not a CIDR range or IP address: ${JSON.stringify(entry)}`);
    list.addSubnet(cidr.address, cidr.prefix, cidr.family === 4 ? 'ipv4' : 'ipv6');
    normalised.push(`${cidr.address}/${cidr.prefix}`);
  }
  return Object.freeze({
    entries: Object.freeze(normalised),
    contains(address: string): boolean {
      const bare = address.replace(/^\[(.*)\]$/, '$1').replace(/%.*$/, '');
      const family = isIP(bare);
      if (family === 0) return false;
      return list.check(bare, family === 4 ? 'ipv4' : 'ipv6');
    },
  });
}

/** Strips the `::ffff:` of an IPv4-mapped IPv6 address, for display and comparison. */
export function plainAddress(address: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  return mapped ? (mapped[1] ?? address) : address;
}
