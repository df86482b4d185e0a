/**
 * The last `/v2/` answer per registry (and per "client sent credentials or not"), in memory
 * and in `<cacheDir>/drp-ping/`, replayed by the ping handler while the upstream fails.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import createDebug from 'debug';

const debug = createDebug('drp:ping');

export const PING_DIR = 'drp-ping';
/** Response headers worth replaying; everything else (dates, ratelimit counters) is not. */
const KEPT_HEADERS = ['www-authenticate', 'content-type', 'docker-distribution-api-version'];

export interface PingAnswer {
  readonly status: number;
  readonly headers: Record<string, string | string[]>;
  /** Base64 body. */
  readonly body: string;
  readonly at: number;
}

export function keptHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const kept: Record<string, string | string[]> = {};
  for (const name of KEPT_HEADERS) {
    const value = headers[name];
    if (value !== undefined) kept[name] = value;
  }
  return kept;
}

export class PingMemory {
  readonly #dir: string;
  readonly #memo = new Map<string, PingAnswer | null>();

  constructor(cacheDir: string) {
    this.#dir = join(cacheDir, PING_DIR);
  }

  #file(key: string): string {
    return join(this.#dir, `${createHash('sha256').update(key).digest('hex').slice(0, 40)}.json`);
  }

  async get(key: string): Promise<PingAnswer | undefined> {
    const memo = this.#memo.get(key);
    if (memo !== undefined) return memo ?? undefined;
    let answer: PingAnswer | null = null;
    try {
      const parsed = JSON.parse(await readFile(this.#file(key), 'utf8')) as PingAnswer & { key?: string };
      if (parsed.key === key && typeof parsed.status === 'number') answer = parsed;
    } catch {
      // never seen
    }
    this.#memo.set(key, answer);
    return answer ?? undefined;
  }

  async put(key: string, answer: PingAnswer): Promise<void> {
    const previous = this.#memo.get(key);
    this.#memo.set(key, answer);
    // Pings are frequent; rewrite the file only when the answer changed.
    if (previous && previous.status === answer.status && previous.body === answer.body) return;
    const file = this.#file(key);
    const tmp = `${file}.${randomUUID()}.tmp`;
    try {
      await mkdir(this.#dir, { recursive: true, mode: 0o700 });
      await writeFile(tmp, JSON.stringify({ key, ...answer }), { mode: 0o600 });
      await rename(tmp, file);
    } catch (error) {
      debug('cannot persist ping answer: %O', error);
      await rm(tmp, { force: true }).catch(() => undefined);
    }
  }
}
