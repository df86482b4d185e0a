/**
 * Who a cached tag answer was fetched for, so that a shared cache never serves one client what
 * only another client may read (the original's "private images become public").
 *
 * Every upstream manifest request falls into one auth class, and tag entries are keyed by it:
 *  - `anonymous`: no Authorization at all. What anyone gets.
 *  - `injected`: drp added the configured credentials (`AUTH_REGISTRIES`). Every client without
 *    credentials of its own gets these anyway, so sharing among them grants nothing new.
 *  - `basic:<mac>`: the client's own Basic credentials (one class per user and password).
 *  - a Bearer token is classed by how drp saw it issued: drp forwards token requests to the
 *    realms upstream challenges name, and remembers (a keyed hash of) each token it hands back
 *    with the class of that token request. A token issued to an anonymous request is
 *    `anonymous`, one issued with injected credentials `injected`, one issued for a client's
 *    Basic credentials that client's `basic:<mac>`. A token drp did not see issued (fetched
 *    elsewhere, or before a restart) is `bearer:<mac>`: a class of its own.
 * MACs use a random key kept in the cache directory, so the index never holds a credential or
 * anything a password could be brute-forced from without that key.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { dirname } from 'node:path';
import createDebug from 'debug';
import { headerValue } from '../upstream/headers.js';
import type { UpstreamTarget } from '../upstream/target.js';
import { targetKey } from '../upstream/target.js';

const debug = createDebug('drp:auth');

export type AuthClass = string;

/** Bounded memory: tokens are short-lived and a busy proxy sees many. */
const MAX_TOKENS = 20_000;
const MAX_REALMS = 1_000;
const DEFAULT_TOKEN_LIFETIME_S = 300;
const MAX_TOKEN_LIFETIME_S = 24 * 3600;

interface TokenRecord {
  readonly authClass: AuthClass;
  readonly expiresAt: number;
}

/** Loads or creates the per-cache MAC key. Falls back to a per-process key if the disk refuses. */
function loadKey(path: string): Buffer {
  try {
    const existing = readFileSync(path);
    if (existing.length >= 32) return existing;
  } catch {
    // not there yet
  }
  const key = randomBytes(32);
  // Written whole to a temp file, then linked into place (fails if another process won): a
  // process starting at the same moment never reads a created but still empty key file.
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    writeFileSync(tmp, key, { mode: 0o600, flag: 'wx' });
    try {
      linkSync(tmp, path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw error;
      // No hard links on this volume (e.g. SMB): create it exclusively instead.
      writeFileSync(path, key, { mode: 0o600, flag: 'wx' });
    }
    return key;
  } catch {
    try {
      const raced = readFileSync(path);
      if (raced.length >= 32) return raced;
    } catch {
      // fall through
    }
    debug('cannot persist the auth-class key at %s; classes will not survive a restart', path);
    return key;
  } finally {
    rmSync(tmp, { force: true });
  }
}

export class AuthClassifier {
  readonly #key: Buffer;
  readonly #now: () => number;
  readonly #realms = new Set<string>();
  readonly #tokens = new Map<string, TokenRecord>();

  /** `keyFile`: where the MAC key lives (created 0600 on first use). */
  constructor(keyFile: string, now: () => number) {
    this.#key = loadKey(keyFile);
    this.#now = now;
  }

  mac(value: string): string {
    return createHmac('sha256', this.#key).update(value).digest('hex').slice(0, 32);
  }

  /**
   * The class of a client request as drp sends it upstream: its own `Authorization`, or, when
   * it sent none, whether drp adds the configured credentials (`injectable`, from
   * `Credentials.has`). The one way handlers class a request.
   */
  classifyRequest(headers: IncomingHttpHeaders, injectable: boolean): AuthClass {
    const clientAuth = headerValue(headers, 'authorization');
    return this.classify(clientAuth, clientAuth === undefined && injectable);
  }

  /**
   * The class of a request drp sends upstream. `clientAuthorization` is what the client sent;
   * `injected` says whether drp would add configured credentials because it sent none.
   */
  classify(clientAuthorization: string | undefined, injected: boolean): AuthClass {
    if (clientAuthorization === undefined || clientAuthorization === '') {
      return injected ? 'injected' : 'anonymous';
    }
    const space = clientAuthorization.indexOf(' ');
    const scheme = (space === -1 ? clientAuthorization : clientAuthorization.slice(0, space)).toLowerCase();
    const credentials = space === -1 ? '' : clientAuthorization.slice(space + 1).trim();
    if (scheme === 'bearer') {
      const record = this.#tokens.get(this.mac(credentials));
      if (record && record.expiresAt > this.#now()) return record.authClass;
      return `bearer:${this.mac(credentials)}`;
    }
    if (scheme === 'basic') return `basic:${this.mac(credentials)}`;
    return `other:${this.mac(clientAuthorization)}`;
  }

  /** Remembers the realm of a `WWW-Authenticate: Bearer realm="..."` challenge. */
  noteChallenge(header: string | string[] | undefined): void {
    for (const value of [header ?? []].flat()) {
      const match = /^\s*bearer\s+(?:.*?[\s,])?realm="([^"]+)"/i.exec(value);
      if (!match?.[1]) continue;
      let url: URL;
      try {
        url = new URL(match[1]);
      } catch {
        continue;
      }
      if (url.protocol !== 'https:' && url.protocol !== 'http:') continue;
      const port = url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
      const key = `${targetKey({ host: url.hostname.replace(/^\[|\]$/g, ''), port })}${url.pathname}`;
      if (this.#realms.has(key)) continue;
      if (this.#realms.size >= MAX_REALMS) {
        const oldest = this.#realms.values().next().value;
        if (oldest !== undefined) this.#realms.delete(oldest);
      }
      this.#realms.add(key);
      debug('token realm %s', key);
    }
  }

  /** True when a request goes to a token realm some upstream challenge named. */
  isTokenRequest(target: UpstreamTarget, pathname: string): boolean {
    return this.#realms.has(`${targetKey(target)}${pathname}`);
  }

  /** Records a token handed back by a realm, with the class of the request that obtained it. */
  noteToken(token: string, authClass: AuthClass, expiresInSeconds: number | undefined): void {
    const lifetime = Math.min(
      MAX_TOKEN_LIFETIME_S,
      Math.max(
        1,
        expiresInSeconds && Number.isFinite(expiresInSeconds) ? expiresInSeconds : DEFAULT_TOKEN_LIFETIME_S,
      ),
    );
    const now = this.#now();
    if (this.#tokens.size >= MAX_TOKENS) {
      for (const [k, v] of this.#tokens) if (v.expiresAt <= now) this.#tokens.delete(k);
      while (this.#tokens.size >= MAX_TOKENS) {
        const oldest = this.#tokens.keys().next().value;
        if (oldest === undefined) break;
        this.#tokens.delete(oldest);
      }
    }
    // Clients keep using a token a little past its stated lifetime; a minute of slack.
    this.#tokens.set(this.mac(token), { authClass, expiresAt: now + (lifetime + 60) * 1000 });
  }
}
