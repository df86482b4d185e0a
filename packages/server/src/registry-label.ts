/**
 * The `registry` label of metrics: the registry as `host:port` when it is one drp was told to
 * intercept (REGISTRIES, plus Docker Hub's hosts), `other` for anything else (a CDN a redirect
 * led to, a token realm elsewhere), so a label never grows with what clients ask for.
 */
import type { InterceptRule } from './config.js';

export function registryLabeler(rules: readonly InterceptRule[]): (registry: string) => string {
  const exact = new Set<string>();
  const anyPort = new Set<string>();
  for (const rule of rules) {
    const host = rule.host.includes(':') ? `[${rule.host}]` : rule.host;
    if (rule.port === '*') anyPort.add(host);
    else exact.add(`${host}:${rule.port ?? 443}`);
  }
  return (registry) => {
    const key = registry.toLowerCase();
    if (exact.has(key)) return key;
    const host = key.replace(/:\d+$/, '');
    return anyPort.has(host) ? key : 'other';
  };
}
