/**
 * Bearer tokens drp fetches itself, for mirror-mode clients that sent no credentials. A mirror
 * client pinged drp's root (answered 200, no challenge), so it never learns the registry's
 * token realm and cannot answer a 401 itself (podman, dockerd). For such a request (target
 * `tokens: 'drp'`, no Authorization, GET or HEAD) a Bearer challenge is answered here: a token
 * from the realm, anonymous or with the configured credentials for the realm's host (the
 * AUTH_REGISTRIES rule: Docker Hub's are for auth.docker.io), then the request is sent again
 * once. When no token comes back, the registry's 401 goes to the client unchanged, so a client
 * that does know the realm (containerd) still fetches one with its own credentials.
 */

import createDebug from 'debug';
import { isPullOnlyTokenQuery } from '../policy/injection.js';
import type { Credentials } from './credentials.js';
import { parseHostPort, type UpstreamTarget } from './target.js';

const debug = createDebug('drp:auth');

/** Tokens are small JSON documents. */
const MAX_TOKEN_BODY = 64 * 1024;
/** Remembered tokens, at most (oldest dropped first). */
const MAX_TOKENS = 512;

export interface BearerChallenge {
  readonly realm: URL;
  readonly service: string | undefined;
  readonly scope: string | undefined;
}

/** Parses `Bearer realm="...",service="...",scope="..."`; undefined for anything else. */
export function parseBearerChallenge(header: string | string[] | undefined): BearerChallenge | undefined {
  for (const value of [header ?? []].flat()) {
    if (!/^\s*bearer\s/i.test(value)) continue;
    const params = new Map<string, string>();
    for (const match of value.matchAll(/([a-z_]+)\s*=\s*"([^"]*)"/gi)) {
      params.set((match[1] ?? '').toLowerCase(), match[2] ?? '');
    }
    const realm = params.get('realm');
    if (!realm) continue;
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      continue;
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') continue;
    return { realm: url, service: params.get('service'), scope: params.get('scope') };
  }
  return undefined;
}

/** What the token fetch needs from the upstream client: one small GET. */
export type FetchText = (
  target: UpstreamTarget,
  path: string,
  headers: Record<string, string>,
) => Promise<{ status: number; body: string }>;

export class BearerTokens {
  readonly #credentials: Credentials;
  readonly #fetch: FetchText;
  readonly #now: () => number;
  readonly #tokens = new Map<string, { token: string; expiresAt: number }>();

  constructor(credentials: Credentials, fetch: FetchText, now: () => number = Date.now) {
    this.#credentials = credentials;
    this.#fetch = fetch;
    this.#now = now;
  }

  /** A token for the challenge, or undefined when the realm gives none. Never throws. */
  async token(challenge: BearerChallenge): Promise<string | undefined> {
    const realm = challenge.realm;
    const protocol = realm.protocol === 'http:' ? 'http' : 'https';
    const where = parseHostPort(realm.host, protocol === 'http' ? 80 : 443);
    if (!where) return undefined;
    const target: UpstreamTarget = { host: where.host, port: where.port, protocol };
    // The central account only for a token that reads (the challenge of a GET or HEAD asks for pull).
    const inject = isPullOnlyTokenQuery(new URLSearchParams({ scope: challenge.scope ?? '' }).toString());
    const headers = this.#credentials.apply({ target, inject }, {}) as Record<string, string>;
    const key = `${realm.href}\0${challenge.service ?? ''}\0${challenge.scope ?? ''}\0${headers.authorization ?? ''}`;
    const known = this.#tokens.get(key);
    if (known && known.expiresAt > this.#now()) return known.token;

    const query = new URLSearchParams(realm.search);
    if (challenge.service !== undefined) query.set('service', challenge.service);
    if (challenge.scope !== undefined) query.set('scope', challenge.scope);
    const path = `${realm.pathname}${query.size > 0 ? `?${query.toString()}` : ''}`;
    try {
      const { status, body } = await this.#fetch(target, path, headers);
      if (status !== 200 || body.length > MAX_TOKEN_BODY) {
        debug('token realm %s answered %d: the 401 goes to the client', realm.host, status);
        return undefined;
      }
      const parsed = JSON.parse(body) as { token?: unknown; access_token?: unknown; expires_in?: unknown };
      const token = typeof parsed.token === 'string' ? parsed.token : parsed.access_token;
      if (typeof token !== 'string' || token === '') return undefined;
      // Docker's default lifetime is 60 s; keep a margin so a token never expires in flight.
      const lifetime = typeof parsed.expires_in === 'number' ? parsed.expires_in : 60;
      if (this.#tokens.size >= MAX_TOKENS) {
        const oldest = this.#tokens.keys().next().value;
        if (oldest !== undefined) this.#tokens.delete(oldest);
      }
      this.#tokens.set(key, { token, expiresAt: this.#now() + Math.max(0, lifetime - 10) * 1000 });
      debug(
        'token from %s for %s (%s)',
        realm.host,
        challenge.scope ?? '-',
        headers.authorization ? 'configured credentials' : 'anonymous',
      );
      return token;
    } catch (error) {
      debug('token realm %s failed: %s', realm.host, (error as Error).message);
      return undefined;
    }
  }
}
