/**
 * Where tunnels and forwards may go, from the configuration: the ports a raw CONNECT tunnel may
 * reach (TUNNEL_PORTS, plus every port REGISTRIES names, squid's `SSL_ports` convention), the
 * blocked ranges (BLOCKED_DESTINATIONS, by default plus the proxy's own addresses) and the
 * names exempt from them (hosts in REGISTRIES and UPSTREAM_MAPPINGS, on their ports only).
 */
import { networkInterfaces } from 'node:os';
import type { InterceptRule, ServerConfig } from '../config.js';

/** REGISTRIES and UPSTREAM_MAPPINGS names as destination-guard exemptions (`host:port`, `host:*`). */
export function exemptNames(
  registries: readonly InterceptRule[],
  mappings: Readonly<Record<string, string>>,
): string[] {
  const names: string[] = [];
  const bracket = (host: string) => (host.includes(':') ? `[${host}]` : host);
  for (const rule of registries) {
    const host = bracket(rule.host);
    // A bare host is port 443 through CONNECT and port 80 as an absolute-form URL.
    if (rule.port === undefined) names.push(`${host}:443`, `${host}:80`);
    else names.push(`${host}:${rule.port}`);
  }
  // A mapping key without a port maps every port of that name, so it is exempt on every port.
  names.push(...Object.keys(mappings));
  return names;
}

/** The ports raw tunnels may reach: TUNNEL_PORTS plus every port named in REGISTRIES. */
export function tunnelPortsFor(
  configured: readonly number[] | '*',
  registries: readonly InterceptRule[],
): ReadonlySet<number> | '*' {
  if (configured === '*') return '*';
  const ports = new Set(configured);
  for (const rule of registries) if (typeof rule.port === 'number') ports.add(rule.port);
  return ports;
}

/** The addresses the proxy listens on: every interface's for a wildcard bind. */
export function ownAddresses(bind: string): string[] {
  if (bind !== '::' && bind !== '0.0.0.0') return bind === 'localhost' ? [] : [bind];
  const addresses: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const info of list ?? []) addresses.push(info.address.replace(/%.*$/, ''));
  }
  return addresses;
}

/** BLOCKED_DESTINATIONS as configured, plus the proxy's own addresses unless it was set. */
export function blockedDestinationsFor(config: ServerConfig): string[] {
  return [...config.blockedDestinations, ...(config.blockOwnAddresses ? ownAddresses(config.bind) : [])];
}
