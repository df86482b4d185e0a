/**
 * The tag index: which manifest digest a tag pointed to, per registry, repository, tag, the
 * client's `Accept` (normalised) and auth class (see policy/auth-class.ts). One small JSON file
 * per entry under `<cacheDir>/drp-tags/<hash(registry, repo, tag)>/<hash(accept, class)>.json`,
 * written atomically (temp file + rename), so entries survive restarts and stale-on-error works
 * after one; a whole tag (every Accept and class) is dropped by removing its directory.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import createDebug from 'debug';
import type { TierName } from '../policy/tiers.js';

const debug = createDebug('drp:tags');

export const TAGS_DIR = 'drp-tags';
/** Entries kept in memory in front of the files (the files stay authoritative). */
const MEMO_LIMIT = 10_000;

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
  readonly #memo = new Map<string, TagEntry | null>();

  constructor(cacheDir: string) {
    this.#dir = join(cacheDir, TAGS_DIR);
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
    try {
      await mkdir(this.#tagDir(entry), { recursive: true });
      await writeFile(tmp, `${JSON.stringify(entry)}\n`);
      await rename(tmp, file);
    } catch (error) {
      debug('cannot persist tag entry for %s/%s:%s: %O', entry.registry, entry.name, entry.tag, error);
      await rm(tmp, { force: true }).catch(() => undefined);
    }
  }

  /** Drops every entry of a tag (all Accept values and auth classes), e.g. after a push. */
  async invalidate(key: Pick<TagKey, 'registry' | 'name' | 'tag'>): Promise<void> {
    const dir = this.#tagDir(key);
    for (const file of [...this.#memo.keys()]) if (file.startsWith(`${dir}/`)) this.#memo.delete(file);
    await rm(dir, { recursive: true, force: true }).catch((error: unknown) => {
      debug('cannot remove tag entries in %s: %O', dir, error);
    });
  }
}
