/**
 * Where drp may connect: every upstream fetch, followed redirect, tunnel and forward asks the
 * guard. Blocked ranges are checked on the address actually connected to: an address literal
 * before connecting, a name through the `lookup` given to net/tls.connect, so the address that
 * is checked is the address that is used (no DNS-rebinding window between check and connect).
 *
 * Names the operator configured (registries, mapped hosts) are exempt by name and port: a
 * registry mapped to 127.0.0.1 keeps working, while 127.0.0.1 itself, or another port of the
 * same name, stays blocked.
 */
import dns, { type LookupAddress } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import { type CidrList, createCidrList, plainAddress } from './cidr.js';

export const DESTINATION_BLOCKED = 'DRP_DESTINATION_BLOCKED';

export interface DestinationGuardOptions {
  /** CIDR ranges (or addresses) nothing may connect to. Empty: no restriction. */
  readonly blocked?: readonly string[];
  /** Names exempt from `blocked`: `host` or `host:*` (every port), `host:port`. */
  readonly exempt?: readonly string[];
}

export type ConnectPlan =
  | { readonly refused: Error & { code: string } }
  | { readonly refused?: undefined; readonly lookup: LookupFunction | undefined };

export interface DestinationGuard {
  /** False when nothing is blocked: callers may skip the checks. */
  readonly active: boolean;
  readonly blocked: CidrList;
  /** Whether `host:port`, the name asked for, is exempt. */
  isExempt(host: string, port: number): boolean;
  /**
   * How to connect to `host:port` (the name asked for) at `connectHost` (after mappings):
   * refused for a blocked address literal, else the `lookup` to pass to connect (undefined:
   * nothing to check, e.g. an exempt name).
   */
  plan(host: string, port: number, connectHost: string): ConnectPlan;
}

function normaliseName(host: string): string {
  return host
    .toLowerCase()
    .replace(/^\[(.*)\]$/, '$1')
    .replace(/\.$/, '');
}

function hostPortText(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

export function destinationRefused(host: string, port: number, address: string): Error & { code: string } {
  const where = hostPortText(host, port);
  const shown = plainAddress(address);
  const via = normaliseName(host) === shown ? '' : ` (${shown})`;
  return Object.assign(new Error(`destination ${where}${via} is in a blocked range (BLOCKED_DESTINATIONS)`), {
    code: DESTINATION_BLOCKED,
  });
}

export function createDestinationGuard(options: DestinationGuardOptions = {}): DestinationGuard {
  const blocked = createCidrList(options.blocked ?? []);
  const exempt = new Set<string>();
  for (const entry of options.exempt ?? []) {
    const match = /^(\[[^\]]+\]|[^:]+)(?::(\d{1,5}|\*))?$/.exec(entry.trim());
    if (!match) throw new Error(`not a host, host:port or host:*: ${JSON.stringify(entry)}`);
    exempt.add(`${normaliseName(match[1] ?? '')}:${match[2] ?? '*'}`);
  }
  const active = blocked.entries.length > 0;

  const isExempt = (host: string, port: number) => {
    const name = normaliseName(host);
    return exempt.has(`${name}:${port}`) || exempt.has(`${name}:*`);
  };

  const lookupFor =
    (host: string, port: number): LookupFunction =>
    (hostname, lookupOptions, callback) => {
      dns.lookup(hostname, { ...lookupOptions, all: true }, (error, addresses: LookupAddress[]) => {
        if (error) return callback(error, '', 0);
        // Addresses in blocked ranges are dropped; a name with nothing else left is refused.
        const allowed = addresses.filter((a) => !blocked.contains(a.address));
        const first = allowed[0];
        if (!first) {
          return callback(destinationRefused(host, port, addresses[0]?.address ?? hostname), '', 0);
        }
        if (lookupOptions.all) return callback(null, allowed);
        return callback(null, first.address, first.family);
      });
    };

  return Object.freeze({
    active,
    blocked,
    isExempt,
    plan(host: string, port: number, connectHost: string): ConnectPlan {
      if (!active || isExempt(host, port)) return { lookup: undefined };
      const literal = normaliseName(connectHost);
      if (isIP(literal) !== 0) {
        return blocked.contains(literal)
          ? { refused: destinationRefused(host, port, literal) }
          : { lookup: undefined };
      }
      return { lookup: lookupFor(host, port) };
    },
  });
}
