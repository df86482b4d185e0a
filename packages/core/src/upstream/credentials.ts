/**
 * Central credentials (the original's `AUTH_REGISTRIES`). The rule: a client that sends its own
 * `Authorization` keeps it; otherwise the configured Basic credentials for the host the request
 * goes to are added. For Docker Hub that host is `auth.docker.io`, so the token request carries
 * the configured account and the token it returns is that account's.
 */
import type { ResolvedOptions } from '../options.js';
import type { HeaderMap } from './client.js';
import type { UpstreamTarget } from './target.js';

export class Credentials {
  readonly #byHost: ResolvedOptions['credentials'];

  constructor(byHost: ResolvedOptions['credentials']) {
    this.#byHost = byHost;
  }

  /** True when credentials are configured for this host (with or without its port). */
  has(target: UpstreamTarget): boolean {
    return this.#lookup(target) !== undefined;
  }

  /** Adds `authorization` to `headers` when the client sent none and the host has credentials. */
  apply(target: UpstreamTarget, headers: HeaderMap): HeaderMap {
    if (headers.authorization !== undefined) return headers;
    const found = this.#lookup(target);
    if (!found) return headers;
    const token = Buffer.from(`${found.username}:${found.password}`).toString('base64');
    return { ...headers, authorization: `Basic ${token}` };
  }

  #lookup(target: UpstreamTarget) {
    const host = target.host.toLowerCase();
    return this.#byHost.get(`${host}:${target.port}`) ?? this.#byHost.get(host);
  }
}
