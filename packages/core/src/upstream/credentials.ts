/**
 * Central credentials (the original's `AUTH_REGISTRIES`). The rule: a client that sends its own
 * `Authorization` keeps it; otherwise, and only for reads (policy/injection.ts decides, once per
 * request, into `RequestContext.inject`), the configured Basic credentials for the host the
 * request goes to are added. For Docker Hub that host is `auth.docker.io`, so a pull-only token
 * request carries the configured account and the token it returns is that account's.
 */
import type { ResolvedOptions } from '../options.js';
import type { HeaderMap } from './headers.js';
import type { UpstreamTarget } from './target.js';

/** What the injection decision needs of a request. */
export interface InjectionScope {
  readonly target: UpstreamTarget;
  /** False for writes and for token requests asking for more than `pull`. */
  readonly inject: boolean;
}

export class Credentials {
  readonly #byHost: ResolvedOptions['credentials'];

  constructor(byHost: ResolvedOptions['credentials']) {
    this.#byHost = byHost;
  }

  /** True when drp would add credentials to this request if the client sent none. */
  has(scope: InjectionScope): boolean {
    return scope.inject && this.#lookup(scope.target) !== undefined;
  }

  /** Adds `authorization` when the client sent none, the request may carry it and the host has some. */
  apply(scope: InjectionScope, headers: HeaderMap): HeaderMap {
    if (headers.authorization !== undefined || !scope.inject) return headers;
    const found = this.#lookup(scope.target);
    if (!found) return headers;
    const token = Buffer.from(`${found.username}:${found.password}`).toString('base64');
    return { ...headers, authorization: `Basic ${token}` };
  }

  #lookup(target: UpstreamTarget) {
    const host = target.host.toLowerCase();
    return this.#byHost.get(`${host}:${target.port}`) ?? this.#byHost.get(host);
  }
}
