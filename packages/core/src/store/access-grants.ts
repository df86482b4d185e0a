/**
 * Who was recently shown to be allowed to read a blob, for `verifyBlobAccess`: keys are
 * registry, repository, digest and a hash of the credentials the client sent (after injection),
 * never the credentials themselves. Memory only, bounded, expiring: losing it costs one
 * upstream HEAD per client, never a wrong answer.
 */
import { createHash } from 'node:crypto';

const MAX_GRANTS = 50_000;

export class AccessGrants {
  readonly #ttlMs: number;
  readonly #now: () => number;
  /** key -> expiry; insertion order = age, oldest first. */
  readonly #grants = new Map<string, number>();

  constructor(ttlMs: number, now: () => number = Date.now) {
    this.#ttlMs = ttlMs;
    this.#now = now;
  }

  static key(registry: string, name: string, digest: string, authorization: string | undefined): string {
    const who = createHash('sha256')
      .update(authorization ?? '')
      .digest('base64url')
      .slice(0, 22);
    return `${registry}|${name}|${digest}|${who}`;
  }

  has(key: string): boolean {
    const expires = this.#grants.get(key);
    if (expires === undefined) return false;
    if (expires <= this.#now()) {
      this.#grants.delete(key);
      return false;
    }
    return true;
  }

  grant(key: string): void {
    this.#grants.delete(key);
    this.#grants.set(key, this.#now() + this.#ttlMs);
    if (this.#grants.size > MAX_GRANTS) {
      const oldest = this.#grants.keys().next();
      if (!oldest.done) this.#grants.delete(oldest.value);
    }
  }
}
