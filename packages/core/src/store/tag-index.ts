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
 *
 * Several processes may share the directory: every write is a temp file with a unique name then
 * a rename, so a reader sees the old or the new entry, never a torn one; a read checks the
 * file's identity (inode, mtime, size) before trusting its memory, so a tag another process
 * rewrote or invalidated (a push) is seen at once; a write counts the tag's variants on disk
 * (every process's), and the whole index is rescanned every few minutes so its bounds hold
 * for the directory. Temp files are removed on load only once older than the grace: a younger
 * one may be another process's write in flight.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Stats } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import createDebug from 'debug';
import type { TierName } from '../policy/tiers.js';
import { SPOOL_GRACE_MS } from './spool-gc.js';

const debug = createDebug('drp:tags');

export const TAGS_DIR = 'drp-tags';
/** Entries kept in memory in front of the files (the files stay authoritative). */
const MEMO_LIMIT = 10_000;
/** Accept classes times auth classes one tag may hold. */
export const MAX_VARIANTS_PER_TAG = 32;
/** Other processes write entries too: the whole index is re-read this often (on a write). */
const RESCAN_MS = 5 * 60_000;

/** What a file looked like when it was read: unchanged identity = unchanged content. */
function identity(st: Stats | undefined): string {
  return st ? `${st.ino}:${st.mtimeMs}:${st.size}` : 'none';
}

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
  readonly #memo = new Map<string, { entry: TagEntry | null; identity: string }>();
  /** Every entry file with its size, least recently written first. */
  readonly #files = new Map<string, number>();
  /** Entry files per tag directory, least recently written first. */
  readonly #perTag = new Map<string, Set<string>>();
  #bytes = 0;
  #scannedAt = 0;
  #rescanning: Promise<void> | undefined;

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
        if (!name.endsWith('.json') && !name.endsWith('.tmp')) continue;
        let info: Stats;
        try {
          info = await stat(file);
        } catch {
          continue; // removed meanwhile
        }
        if (name.endsWith('.json')) found.push({ file, size: info.size, mtime: info.mtimeMs });
        else if (Date.now() - info.mtimeMs > SPOOL_GRACE_MS) await unlink(file).catch(() => undefined);
      }
    }
    found.sort((a, b) => a.mtime - b.mtime);
    // Replaced in one step: a put meanwhile sees either the old or the new accounting.
    this.#files.clear();
    this.#perTag.clear();
    this.#bytes = 0;
    for (const { file, size } of found) this.#track(file, size);
    this.#scannedAt = performance.now();
    await this.#enforce(undefined);
  }

  /** Re-reads the whole index in the background once RESCAN_MS have passed. */
  #maybeRescan(): void {
    if (this.#rescanning || performance.now() - this.#scannedAt < RESCAN_MS) return;
    this.#rescanning = this.load()
      .catch((error: unknown) => debug('tag index rescan failed: %O', error))
      .finally(() => {
        this.#rescanning = undefined;
      });
  }

  /** Tracks the tag's entry files on disk (other processes write them too), oldest first. */
  async #syncTag(dir: string): Promise<void> {
    const found: { file: string; size: number; mtime: number }[] = [];
    for (const name of await listDir(dir)) {
      if (!name.endsWith('.json')) continue;
      const file = join(dir, name);
      try {
        const info = await stat(file);
        found.push({ file, size: info.size, mtime: info.mtimeMs });
      } catch {
        // removed meanwhile
      }
    }
    found.sort((a, b) => a.mtime - b.mtime);
    const present = new Set(found.map((f) => f.file));
    for (const file of [...(this.#perTag.get(dir) ?? [])]) if (!present.has(file)) this.#untrack(file);
    const set = new Set<string>();
    for (const { file, size } of found) {
      if (this.#files.get(file) !== size) this.#track(file, size);
      set.add(file);
    }
    if (set.size > 0) this.#perTag.set(dir, set);
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

  #remember(file: string, entry: TagEntry | null, identity: string): void {
    this.#memo.delete(file);
    this.#memo.set(file, { entry, identity });
    if (this.#memo.size > MEMO_LIMIT) {
      const oldest = this.#memo.keys().next().value;
      if (oldest !== undefined) this.#memo.delete(oldest);
    }
  }

  async get(key: TagKey): Promise<TagEntry | undefined> {
    const file = this.#file(key);
    // Another process may have rewritten or removed it: memory counts only for the same file.
    const seen = identity(await stat(file).catch(() => undefined));
    const memo = this.#memo.get(file);
    if (memo !== undefined && memo.identity === seen) return memo.entry ?? undefined;
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
    this.#remember(file, entry, seen);
    return entry ?? undefined;
  }

  /** Writes (replaces) an entry. Failures to persist are reported but the memory copy stays. */
  async put(entry: TagEntry): Promise<void> {
    const file = this.#file(entry);
    this.#remember(file, entry, 'pending');
    const tmp = `${file}.${randomUUID()}.tmp`;
    const text = `${JSON.stringify(entry)}\n`;
    try {
      await mkdir(this.#tagDir(entry), { recursive: true, mode: 0o700 });
      await writeFile(tmp, text, { mode: 0o600 });
      await rename(tmp, file);
      this.#remember(file, entry, identity(await stat(file).catch(() => undefined)));
      await this.#syncTag(this.#tagDir(entry));
      this.#track(file, Buffer.byteLength(text));
      await this.#enforce(file);
      this.#maybeRescan();
    } catch (error) {
      debug('cannot persist tag entry for %s/%s:%s: %O', entry.registry, entry.name, entry.tag, error);
      await rm(tmp, { force: true }).catch(() => undefined);
      // Kept in memory while the file stays as it is.
      this.#remember(file, entry, identity(await stat(file).catch(() => undefined)));
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
