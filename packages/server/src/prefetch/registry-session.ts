/**
 * Registry API requests through the proxy, authenticated the way docker and skopeo do it:
 * send without credentials (the proxy may add its own from AUTH_REGISTRIES); on a 401 answer
 * the challenge: `Bearer realm=...,service=...,scope=...` -> get a token from the realm (with
 * the auth file's credentials for that registry, or anonymously), `Basic` -> the credentials.
 * Tokens are kept per registry and repository. Redirects (blob CDNs) are followed, dropping
 * the Authorization header when the host changes.
 */
import type { IncomingMessage } from 'node:http';
import type { Credential } from './authfile.js';
import { type ProxyEndpoint, readBody, send } from './through-proxy.js';

const MAX_REDIRECTS = 5;

export class RegistrySession {
  readonly #proxy: ProxyEndpoint;
  readonly #credentials: ReadonlyMap<string, Credential>;
  /** `registry repo` -> Authorization value that worked (or was issued) for it. */
  readonly #auth = new Map<string, string>();

  constructor(proxy: ProxyEndpoint, credentials: ReadonlyMap<string, Credential>) {
    this.#proxy = proxy;
    this.#credentials = credentials;
  }

  /** GET `path` (`/v2/...`) on `registry` for repository `name`; a non-2xx answer is an error. */
  async get(registry: string, name: string, path: string, accept?: string): Promise<IncomingMessage> {
    const key = `${registry} ${name}`;
    let res = await this.#follow(new URL(`https://${registry}${path}`), this.#auth.get(key), accept);
    if (res.statusCode === 401) {
      const challenge = String(res.headers['www-authenticate'] ?? '');
      await readBody(res).catch(() => undefined);
      const auth = await this.#answer(registry, name, challenge);
      this.#auth.set(key, auth);
      res = await this.#follow(new URL(`https://${registry}${path}`), auth, accept);
    }
    const status = res.statusCode ?? 0;
    if (status < 200 || status > 299) {
      const body = (await readBody(res, 64 * 1024).catch(() => Buffer.alloc(0))).toString('utf8');
      throw new Error(`GET ${registry}${path}: ${status}${errorText(body)}`);
    }
    return res;
  }

  async #follow(
    url: URL,
    authorization: string | undefined,
    accept: string | undefined,
  ): Promise<IncomingMessage> {
    let current = url;
    for (let hop = 0; ; hop += 1) {
      const sameHost = current.host === url.host;
      const res = await send(this.#proxy, current, {
        headers: {
          ...(accept ? { accept } : {}),
          ...(authorization && sameHost ? { authorization } : {}),
          'user-agent': 'drp-prefetch',
        },
      });
      const status = res.statusCode ?? 0;
      const location = res.headers.location;
      if (status < 300 || status > 399 || !location || hop >= MAX_REDIRECTS) return res;
      res.resume();
      current = new URL(location, current);
    }
  }

  async #answer(registry: string, name: string, challenge: string): Promise<string> {
    const credential = this.#credentials.get(registry.toLowerCase());
    const basic = credential
      ? `Basic ${Buffer.from(`${credential.username}:${credential.password}`).toString('base64')}`
      : undefined;
    const scheme = challenge.split(' ')[0]?.toLowerCase();
    if (scheme === 'basic') {
      if (!basic)
        throw new Error(`${registry} wants credentials: add them to the auth file or AUTH_REGISTRIES`);
      return basic;
    }
    if (scheme !== 'bearer') throw new Error(`${registry} answered 401 without a usable challenge`);
    const params = challengeParams(challenge);
    if (!params.realm) throw new Error(`${registry}: Bearer challenge without a realm`);
    const realm = new URL(params.realm);
    if (params.service) realm.searchParams.set('service', params.service);
    realm.searchParams.set('scope', params.scope ?? `repository:${name}:pull`);
    const res = await send(this.#proxy, realm, {
      headers: { ...(basic ? { authorization: basic } : {}), 'user-agent': 'drp-prefetch' },
    });
    const body = (await readBody(res, 1024 * 1024)).toString('utf8');
    if (res.statusCode !== 200)
      throw new Error(`token from ${realm.host}: ${res.statusCode}${errorText(body)}`);
    const parsed = JSON.parse(body) as { token?: unknown; access_token?: unknown };
    const token = typeof parsed.token === 'string' ? parsed.token : parsed.access_token;
    if (typeof token !== 'string' || token === '')
      throw new Error(`token from ${realm.host}: no token in the answer`);
    return `Bearer ${token}`;
  }
}

/** `Bearer realm="https://x",service="y",scope="a,b"` -> { realm, service, scope }. */
export function challengeParams(header: string): Record<string, string> {
  const params: Record<string, string> = {};
  const rest = header.slice(header.indexOf(' ') + 1);
  for (const match of rest.matchAll(/([a-zA-Z_]+)\s*=\s*(?:"([^"]*)"|([^,\s]*))/g)) {
    params[(match[1] ?? '').toLowerCase()] = match[2] ?? match[3] ?? '';
  }
  return params;
}

/** The first OCI error message of a body, for a one-line failure. */
function errorText(body: string): string {
  try {
    const parsed = JSON.parse(body) as { errors?: { code?: string; message?: string }[] };
    const first = parsed.errors?.[0];
    if (first) return ` ${first.code ?? ''} ${first.message ?? ''}`.trimEnd();
  } catch {
    // not an OCI error body
  }
  return '';
}
