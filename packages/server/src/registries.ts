/**
 * REGISTRIES: which CONNECT targets (and absolute-form plain-HTTP requests) drp intercepts.
 *
 *   host             port 443 (80 for plain HTTP)
 *   host:5000        that port
 *   host:*           any port
 *   *.example.com    every host under example.com (not example.com itself); ports as above
 *
 * Entries are separated by whitespace and/or commas. Anything else (URLs, paths, a `*` in any
 * other place) is refused, so a typo stops the daemon instead of silently intercepting nothing.
 */
import { parseHostPort } from '@drp/core';
import { Expected } from './errors.js';

/** One REGISTRIES entry. `port` undefined: 443 for CONNECT (80 for plain HTTP); `'*'`: any. */
export interface InterceptRule {
  /** Lower-case host, IPv6 without brackets, or `*.domain` for every host under `domain`. */
  readonly host: string;
  readonly port: number | '*' | undefined;
}

const FORMS = 'host names separated by spaces or commas (host, host:port, host:* or *.domain)';
/** A DNS name after `*.`: letters, digits, hyphens, dots; no leading or trailing dot. */
const DOMAIN = /^[a-z0-9-]+(?:\.[a-z0-9-]+)*$/;

/** Parses a REGISTRIES value; throws Expected naming the first bad entry. */
export function parseRegistries(value: string): InterceptRule[] {
  const rules: InterceptRule[] = [];
  for (const entry of value.split(/[\s,]+/).filter(Boolean)) {
    const rule = parseEntry(entry);
    if (!rule) throw new Expected(`${FORMS}, got ${JSON.stringify(entry)}`, true);
    rules.push(rule);
  }
  return rules;
}

function parseEntry(entry: string): InterceptRule | undefined {
  if (/^https?:/i.test(entry)) return undefined;
  const anyPort = entry.endsWith(':*');
  let hostPart = anyPort ? entry.slice(0, -2) : entry;
  const wildcard = hostPart.startsWith('*.');
  if (wildcard) hostPart = hostPart.slice(2);
  if (hostPart.includes('*')) return undefined;
  const parsed = parseHostPort(hostPart, 0);
  if (!parsed) return undefined;
  if (wildcard && !DOMAIN.test(parsed.host)) return undefined;
  if (anyPort && parsed.port !== 0) return undefined;
  return {
    host: wildcard ? `*.${parsed.host}` : parsed.host,
    port: anyPort ? '*' : parsed.port === 0 ? undefined : parsed.port,
  };
}

/** How a rule is shown (startup line, `/`): `host`, `host:port`, `[v6]:port`, `*.domain:*`. */
export function formatRule(rule: InterceptRule): string {
  if (rule.port === undefined) return rule.host;
  return `${rule.host.includes(':') ? `[${rule.host}]` : rule.host}:${rule.port}`;
}

/** Whether a CONNECT (or, with `scheme` http, an absolute-form request) to host:port is intercepted. */
export function isIntercepted(
  rules: readonly InterceptRule[],
  host: string,
  port: number,
  scheme: 'https' | 'http' = 'https',
): boolean {
  const h = host
    .toLowerCase()
    .replace(/^\[(.*)\]$/, '$1')
    .replace(/\.$/, '');
  const defaultPort = scheme === 'https' ? 443 : 80;
  return rules.some(
    (r) =>
      hostMatches(r.host, h) &&
      (r.port === '*' || r.port === port || (r.port === undefined && port === defaultPort)),
  );
}

function hostMatches(ruleHost: string, host: string): boolean {
  if (ruleHost.startsWith('*.')) return host.endsWith(ruleHost.slice(1)) && host.length > ruleHost.length - 1;
  return ruleHost === host;
}
