/**
 * Mirror mode: registry API requests sent to drp itself (origin-form `/v2/...` on the proxy
 * port, or on MIRROR_TLS_PORT), as containerd `hosts.toml`, dockerd `registry-mirrors` and
 * podman `registries.conf` mirrors send them. No interception and no CA on the client: the
 * request names its registry, and is then served by the same cache call as intercepted
 * traffic (tiers, stale answers, AUTH_REGISTRIES, logs).
 *
 * Which registry, in this order:
 *   ?ns=<registry>                   containerd, on every request (ns wins over a prefix)
 *   /v2/<registry-host>/<name>/...   a host prefix: the first component contains `.` or `:`
 *                                    or is `localhost` (Docker's rule); podman mirrors
 *   /v2/<name>/...                   MIRROR_DEFAULT_REGISTRY (docker.io): dockerd's mirrors
 * `GET /v2/` with neither is answered by drp (podman and dockerd ping the mirror root).
 * Only registries drp intercepts are mirrored; any other is a 404 naming it: a mirror to
 * anywhere would be an open proxy. `docker.io` means Docker Hub (registry-1.docker.io).
 *
 * Credentials: a client's own Authorization goes upstream as it is, and a 401 challenge comes
 * back to it unchanged. A client that sends none gets a token fetched by drp (anonymous, or
 * with AUTH_REGISTRIES for the realm's host): after drp's own root ping it knows no realm.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ociErrorBody, parseHostPort, type RequestOutcome, targetKey, type UpstreamTarget } from '@drp/core';

/** Whether an origin-form request target is for mirror mode (everything under `/v2`). */
export function isMirrorPath(url: string): boolean {
  return /^\/v2(?:[/?]|$)/.test(url);
}

export type MirrorRoute =
  /** Serve `path` (ns and prefix removed, other query parameters kept) for `target`. */
  | { readonly kind: 'registry'; readonly target: UpstreamTarget; readonly path: string }
  /** The root ping, answered by drp. */
  | { readonly kind: 'ping' }
  /** A registry drp does not intercept. */
  | { readonly kind: 'refused'; readonly registry: string }
  | { readonly kind: 'invalid'; readonly reason: string };

export interface MirrorRules {
  /** Whether drp intercepts host:port over TLS (REGISTRIES + Docker Hub). */
  intercepts(host: string, port: number): boolean;
  /** MIRROR_DEFAULT_REGISTRY, e.g. `docker.io`. */
  readonly defaultRegistry: string;
}

const DOCKER_HUB_NAMES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

/** Docker's rule for the first component of a reference: a registry host, or part of the name. */
function isRegistryHost(component: string): boolean {
  return component.includes('.') || component.includes(':') || component === 'localhost';
}

/** `docker.io` -> registry-1.docker.io:443; `host[:port]` -> itself (443 by default). */
export function registryTarget(name: string): UpstreamTarget | undefined {
  const lower = name.toLowerCase();
  if (DOCKER_HUB_NAMES.has(lower)) return { host: 'registry-1.docker.io', port: 443, protocol: 'https' };
  const parsed = parseHostPort(lower);
  return parsed ? { host: parsed.host, port: parsed.port, protocol: 'https' } : undefined;
}

/** Maps an origin-form mirror request target onto the registry and the path to serve. */
export function routeMirrorRequest(url: string, rules: MirrorRules): MirrorRoute {
  const queryAt = url.indexOf('?');
  const pathname = queryAt === -1 ? url : url.slice(0, queryAt);
  const params = new URLSearchParams(queryAt === -1 ? '' : url.slice(queryAt + 1));
  const ns = params.get('ns');
  params.delete('ns');
  const query = params.size > 0 ? `?${params.toString()}` : '';

  const rest = pathname.replace(/^\/v2\/?/, '');
  const slash = rest.indexOf('/');
  const first = slash === -1 ? rest : rest.slice(0, slash);
  let prefix: UpstreamTarget | undefined;
  if (first !== '' && isRegistryHost(first)) {
    prefix = registryTarget(first);
    if (!prefix) return { kind: 'invalid', reason: `invalid registry host in path: ${first.slice(0, 80)}` };
  }
  const withoutPrefix = slash === -1 ? '/v2/' : `/v2${rest.slice(slash)}`;

  // By Docker's rule a host-like first component is never part of a repository name: it is
  // removed even when ns names the registry.
  const path = `${prefix ? withoutPrefix : pathname}${query}`;
  let target: UpstreamTarget | undefined;
  if (ns !== null) {
    target = registryTarget(ns);
    if (!target) return { kind: 'invalid', reason: `invalid ns parameter: ${ns.slice(0, 80)}` };
  } else if (prefix) {
    target = prefix;
  } else if (rest === '') {
    return { kind: 'ping' };
  } else {
    target = registryTarget(rules.defaultRegistry);
    if (!target) return { kind: 'invalid', reason: 'invalid MIRROR_DEFAULT_REGISTRY' };
  }
  if (!rules.intercepts(target.host, target.port)) {
    return { kind: 'refused', registry: targetKey(target) };
  }
  return { kind: 'registry', target, path };
}

export interface MirrorOptions extends MirrorRules {
  /** The cache call intercepted requests get: core's `handle()` and its logging. */
  serve(req: IncomingMessage, res: ServerResponse, target: UpstreamTarget): void;
  /** For the access log: an answer drp gave itself (the root ping, a refusal). */
  answered(outcome: RequestOutcome, req: IncomingMessage): void;
}

function answer(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  body: string,
): { bytes: number; method: string } {
  const method = (req.method ?? 'GET').toUpperCase();
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'docker-distribution-api-version': 'registry/2.0',
  });
  res.end(method === 'HEAD' ? undefined : body);
  return { bytes: method === 'HEAD' ? 0 : Buffer.byteLength(body), method };
}

/** The mirror-mode entry point: one function per request, which the caller may wrap (admission). */
export function createMirror(options: MirrorOptions): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const started = performance.now();
    const url = req.url ?? '/';
    const route = routeMirrorRequest(url, options);
    if (route.kind === 'registry') {
      req.url = route.path; // upstream never sees `ns` or the prefix
      // The client saw no challenge at drp's root ping: drp answers Bearer challenges for a
      // client that sends no credentials (core's upstream/bearer.ts), else relays them.
      options.serve(req, res, { ...route.target, tokens: 'drp' });
      return;
    }
    let status: number;
    let body: string;
    if (route.kind === 'ping') {
      status = 200;
      body = '{}';
    } else if (route.kind === 'refused') {
      status = 404;
      body = ociErrorBody(
        'NAME_UNKNOWN',
        `registry ${route.registry} is not mirrored by this proxy (only REGISTRIES and Docker Hub are)`,
        { registry: route.registry },
      );
    } else {
      status = 400;
      body = ociErrorBody('NAME_INVALID', route.reason);
    }
    const { bytes, method } = answer(req, res, status, body);
    options.answered(
      {
        method,
        registry: route.kind === 'refused' ? route.registry : '-',
        path: url.split('?')[0] ?? url,
        requestType: route.kind === 'ping' ? 'ping' : 'other',
        cacheStatus: 'BYPASS',
        status,
        bytes,
        upstreamMs: undefined,
        totalMs: Math.round(performance.now() - started),
        error: undefined,
        aborted: false,
      },
      req,
    );
  };
}
