/**
 * PROXY_AUTH / PROXY_AUTH_FILE: checks a `Basic` credential against `user:password` and/or an
 * htpasswd file of bcrypt entries. A bcrypt check costs milliseconds of CPU by design, so:
 * verified credentials are remembered briefly (by a hash of the header, never the password),
 * failed ones too (the exact same wrong header costs nothing twice; every new guess still pays
 * the full bcrypt price), and at most a few checks run at once with a bounded queue.
 * Secrets are compared in constant time.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import bcrypt from 'bcryptjs';

export interface ProxyUser {
  readonly username: string;
  /** From PROXY_AUTH. */
  readonly password?: string;
  /** From PROXY_AUTH_FILE (`$2a$`, `$2b$` or `$2y$`). */
  readonly bcryptHash?: string;
}

export interface CredentialCheck {
  /** Whether `header` (`Basic base64(user:password)`) names a known user and their password. */
  verify(header: string | undefined): Promise<boolean>;
}

const REMEMBER_MS = 60_000;
const MAX_REMEMBERED = 1024;
const MAX_RUNNING = 2;
const MAX_QUEUED = 256;

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** Constant-time for any lengths: both sides are hashed to 32 bytes first. */
function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}

export function parseBasic(header: string | undefined): { username: string; password: string } | undefined {
  const match = /^Basic +([A-Za-z0-9+/=]{1,4096}) *$/i.exec(header ?? '');
  if (!match) return undefined;
  const decoded = Buffer.from(match[1] ?? '', 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return undefined;
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** Parses htpasswd text; throws naming the line for anything but `user:$2[aby]$...` entries. */
export function parseHtpasswd(text: string): ProxyUser[] {
  const users: ProxyUser[] = [];
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    const username = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    if (colon <= 0 || !/^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$/.test(hash)) {
      throw new Error(`line ${i + 1} is not a bcrypt entry (user:$2y$...; create them with htpasswd -B)`);
    }
    users.push({ username, bcryptHash: hash });
  }
  if (users.length === 0) throw new Error('no entries (create them with htpasswd -B)');
  return users;
}

/** bcrypt's check; replaceable so tests can count how often it runs. */
export type BcryptCompare = (password: string, hash: string) => Promise<boolean>;

export function createCredentialCheck(
  users: readonly ProxyUser[],
  compare: BcryptCompare = (password, hash) => bcrypt.compare(password, hash),
): CredentialCheck {
  const remembered = new Map<string, { ok: boolean; until: number }>();
  const anyHash = users.find((u) => u.bcryptHash)?.bcryptHash;
  let running = 0;
  const waiting: (() => void)[] = [];

  async function limited<T>(work: () => Promise<T>): Promise<T | undefined> {
    if (running >= MAX_RUNNING) {
      if (waiting.length >= MAX_QUEUED) return undefined;
      await new Promise<void>((resolve) => waiting.push(resolve));
    }
    running += 1;
    try {
      return await work();
    } finally {
      running -= 1;
      waiting.shift()?.();
    }
  }

  async function check(username: string, password: string): Promise<boolean | undefined> {
    let ok = false;
    let bcryptHash: string | undefined;
    for (const user of users) {
      // Every plain entry is compared, so timing does not tell which user names exist.
      if (user.password !== undefined && sameSecret(user.username, username)) {
        ok = sameSecret(user.password, password) || ok;
      }
      if (user.bcryptHash && user.username === username) bcryptHash = user.bcryptHash;
    }
    if (ok) return true;
    // An unknown user costs one bcrypt check as well, so it is not told apart by timing.
    const hash = bcryptHash ?? anyHash;
    if (!hash) return false;
    const matched = await limited(() => compare(password, hash));
    if (matched === undefined) return undefined;
    return matched && bcryptHash !== undefined;
  }

  return {
    async verify(header) {
      const credential = parseBasic(header);
      if (!credential) return false;
      const key = digest(header ?? '').toString('base64');
      const now = Date.now();
      const hit = remembered.get(key);
      if (hit && hit.until > now) return hit.ok;
      const ok = await check(credential.username, credential.password);
      // Overloaded (queue full): refused, and not remembered.
      if (ok === undefined) return false;
      if (remembered.size >= MAX_REMEMBERED) {
        for (const [k, v] of remembered) if (v.until <= now) remembered.delete(k);
        if (remembered.size >= MAX_REMEMBERED) remembered.delete(remembered.keys().next().value as string);
      }
      remembered.set(key, { ok, until: now + REMEMBER_MS });
      return ok;
    },
  };
}
