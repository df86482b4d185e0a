/**
 * The tag index: which manifest digest a tag pointed to, per registry, repository, tag, the
 * client's `Accept` (normalised) and auth class (see policy/auth-class.ts). One small JSON file
 * per entry under `<cacheDir>/drp-tags/<hash(registry, repo, tag)>/<hash(accept, class)>.json`,
 * written atomically (temp file + rename, 0600), so entries survive restarts and stale-on-error
 * works after one; a whole tag (every Accept and class) is dropped by removing its directory.
 *
 * Bounded: every Authorization value is a class of its own, so a client could otherwise grow
 * the index without end. A tag keeps at most MAX_VARIANTS_PER_TAG entries and the whole index
 * at most `maxEntries` and `maxBytes` (least recently written go first); its bytes count in
 * the cache's size cap (`bytes`, read by the blob store).
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import createDebug from 'debug';
import type { TierName } from '../policy/tiers.js';

const debug = createDebug('drp:tags');

export const TAGS_DIR = 'drp-tags';
/** Entries kept in memory in front of the files (the files stay authoritative). */
const MEMO_LIMIT = 10_000;
/** Accept classes times auth classes one tag may hold. */
export const MAX_VARIANTS_PER_TAG = 32;

export interface TagIndexLimits {
  readonly maxEntries: number;
  readonly maxBytes: number;
}

export interface TagKey {
  /** `host:port` of the upstream registry. */
  readonly registry: string;
  readonly name: string;
  readonly tag: string;
  /** The client's negotiated media-type class (see normaliseAccept). */
  readonly accept: string;
  readonly authClass: string;
}

export interface TagEntry extends TagKey {
  readonly digest: string;
  readonly mediaType: string;
  readonly size: number;
  /** Epoch ms when upstream last confirmed this digest (GET or HEAD). */
  readonly fetchedAt: number;
  readonly tier: TierName | 'uncached';
}

/**
 * The manifest media types that decide what a registry answers for a tag: it returns the
 * manifest the tag points to when the client accepts that type. Schema 1 types and the wildcard only
 * matter when none of these is accepted (the registry then converts, and schema 1 answers are
 * never cached).
 */
export const NEGOTIATED_MEDIA_TYPES: readonly string[] = [
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.oci.artifact.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
];

/**
 * `Accept` as a cache key: the negotiated media-type class, i.e. which of the manifest media
 * types above the client accepts (docker, containerd, podman and skopeo all accept the same
 * four, so they share entries; a client accepting only Docker types gets its own). Parameters
 * (`q=`), order, case and spacing never split it. A client accepting none of them is keyed by
 * its whole normalised Accept.
 */
export function normaliseAccept(header: string | string[] | undefined): string {
  const values = [header ?? []].flat().join(',');
  const types = new Set<string>();
  for (const part of values.split(',')) {
    const type = (part.split(';')[0] ?? '').trim().toLowerCase();
    if (type) types.add(type);
  }
  const negotiated = NEGOTIATED_MEDIA_TYPES.filter((t) => types.has(t));
  if (negotiated.length > 0) return negotiated.join(',');
  return `other:${[...types].sort().join(',')}`;
}

function hash(...parts: string[]): string {
  return createHash('sha256').update(parts.join('\n')).digest('hex').slice(0, 40);
}

function isEntry(value: unknown): value is TagEntry {
  const v = value as Partial<TagEntry> | null;
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof v.digest === 'string' &&
    typeof v.mediaType === 'string' &&
    typeof v.fetchedAt === 'number' &&
    typeof v.registry === 'string' &&
    typeof v.name === 'string' &&
    typeof v.tag === 'string'
  );
}

export class TagIndex {
  readonly #dir: string;
  readonly #limits: TagIndexLimits;
  readonly #memo = new Map<string, TagEntry | null>();
  /** Every entry file with its size, least recently written first. */
  readonly #files = new Map<string, number>();
  /** Entry files per tag directory, least recently written first. */
  readonly #perTag = new Map<string, Set<string>>();
  #bytes = 0;

  constructor(
    cacheDir: string,
    limits: TagIndexLimits = { maxEntries: 100_000, maxBytes: 64 * 1024 * 1024 },
  ) {
    this.#dir = join(cacheDir, TAGS_DIR);
    this.#limits = limits;
  }

  /** Bytes on disk, counted in the cache's size cap. */
  get bytes(): number {
    return this.#bytes;
  }

  get entries(): number {
    return this.#files.size;
  }

  /** Reads what is on disk (sizes and ages), so the bounds hold across restarts. */
  async load(): Promise<void> {
    const found: { file: string; size: number; mtime: number }[] = [];
    for (const tagDir of await listDir(this.#dir)) {
      for (const name of await listDir(join(this.#dir, tagDir))) {
        const file = join(this.#dir, tagDir, name);
        if (name.endsWith('.tmp')) {
          await unlink(file).catch(() => undefined);
          continue;
        }
        if (!name.endsWith('.json')) continue;
        try {
          const info = await stat(file);
          found.push({ file, size: info.size, mtime: info.mtimeMs });
        } catch {
          // removed meanwhile
        }
      }
    }
    found.sort((a, b) => a.mtime - b.mtime);
    for (const { file, size } of found) this.#track(file, size);
    await this.#enforce(undefined);
  }

  #track(file: string, size: number): void {
    const previous = this.#files.get(file);
    if (previous !== undefined) this.#bytes -= previous;
    this.#files.delete(file);
    this.#files.set(file, size);
    this.#bytes += size;
    const dir = dirname(file);
    const set = this.#perTag.get(dir) ?? new Set<string>();
    set.delete(file);
    set.add(file);
    this.#perTag.set(dir, set);
  }

  #untrack(file: string): void {
    const size = this.#files.get(file);
    if (size === undefined) return;
    this.#files.delete(file);
    this.#bytes -= size;
    this.#memo.delete(file);
    const dir = dirname(file);
    const set = this.#perTag.get(dir);
    set?.delete(file);
    if (set?.size === 0) this.#perTag.delete(dir);
  }

  /** Removes the oldest entries until the tag of `written` and the whole index fit. */
  async #enforce(written: string | undefined): Promise<void> {
    const victims: string[] = [];
    const siblings = written ? this.#perTag.get(dirname(written)) : undefined;
    if (siblings) {
      for (const file of siblings) {
        if (siblings.size - victims.length <= MAX_VARIANTS_PER_TAG) break;
        if (file !== written) victims.push(file);
      }
    }
    for (const file of victims) this.#untrack(file);
    for (const file of this.#files.keys()) {
      if (this.#files.size <= this.#limits.maxEntries && this.#bytes <= this.#limits.maxBytes) break;
      if (file === written) continue;
      this.#untrack(file);
      victims.push(file);
    }
    if (victims.length > 0) debug('tag index over its bounds: dropping %d entries', victims.length);
    await Promise.all(victims.map((file) => unlink(file).catch(() => undefined)));
  }

  #tagDir(key: Pick<TagKey, 'registry' | 'name' | 'tag'>): string {
    return join(this.#dir, hash(key.registry, key.name, key.tag));
  }

  #file(key: TagKey): string {
    return join(this.#tagDir(key), `${hash(key.accept, key.authClass)}.json`);
  }

  #remember(file: string, entry: TagEntry | null): void {
    this.#memo.delete(file);
    this.#memo.set(file, entry);
    if (this.#memo.size > MEMO_LIMIT) {
      const oldest = this.#memo.keys().next().value;
      if (oldest !== undefined) this.#memo.delete(oldest);
    }
  }

  async get(key: TagKey): Promise<TagEntry | undefined> {
    const file = this.#file(key);
    const memo = this.#memo.get(file);
    if (memo !== undefined) return memo ?? undefined;
    let entry: TagEntry | null = null;
    try {
      const parsed: unknown = JSON.parse(await readFile(file, 'utf8'));
      // A hash collision or a hand-edited file must never answer for another key.
      if (
        isEntry(parsed) &&
        parsed.registry === key.registry &&
        parsed.name === key.name &&
        parsed.tag === key.tag &&
        parsed.accept === key.accept &&
        parsed.authClass === key.authClass
      ) {
        entry = parsed;
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT')
        debug('unreadable tag entry %s: %O', file, error);
    }
    this.#remember(file, entry);
    return entry ?? undefined;
  }

  /** Writes (replaces) an entry. Failures to persist are reported but the memory copy stays. */
  async put(entry: TagEntry): Promise<void> {
    const file = this.#file(entry);
    this.#remember(file, entry);
    const tmp = `${file}.${randomUUID()}.tmp`;
    const text = `${JSON.stringify(entry)}\n`;
    try {
      await mkdir(this.#tagDir(entry), { recursive: true, mode: 0o700 });
      await writeFile(tmp, text, { mode: 0o600 });
      await rename(tmp, file);
      this.#track(file, Buffer.byteLength(text));
      await this.#enforce(file);
    } catch (error) {
      debug('cannot persist tag entry for %s/%s:%s: %O', entry.registry, entry.name, entry.tag, error);
      await rm(tmp, { force: true }).catch(() => undefined);
    }
  }

  /** Drops every entry of a tag (all Accept values and auth classes), e.g. after a push. */
  async invalidate(key: Pick<TagKey, 'registry' | 'name' | 'tag'>): Promise<void> {
    const dir = this.#tagDir(key);
    for (const file of [...this.#memo.keys()]) if (file.startsWith(`${dir}/`)) this.#memo.delete(file);
    for (const file of [...(this.#perTag.get(dir) ?? [])]) this.#untrack(file);
    await rm(dir, { recursive: true, force: true }).catch((error: unknown) => {
      debug('cannot remove tag entries in %s: %O', dir, error);
    });
  }
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}
