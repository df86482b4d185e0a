/**
 * The store seen from outside a running cache: what the operator tools (`drp-server cache ...`)
 * read and change while daemons may be serving the same directory. Nothing here opens a
 * BlobStore (a tool is not a member of the directory: no journal, no lease); it reads
 * cacache's index, every access journal and the tag files, and removes entries the way the store
 * does (index line first, then the content file), then notes the removal for the daemons (see
 * removal-notes.ts). Removing a file a daemon is streaming is safe: an open file stays
 * readable after unlink, and the daemon's next open of that digest is a miss.
 */
import { readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import cacache from 'cacache';
import { readJournals } from './access-journal.js';
import { hashFile, removeIndexEntry } from './blob-store.js';
import { type BlobDigest, blobDigest, blobKey, contentPath } from './digest.js';
import { noteRemovals } from './removal-notes.js';
import { TAGS_DIR, type TagEntry } from './tag-index.js';

export interface StoredEntry {
  /** `sha256:<hex>`. */
  readonly digest: string;
  readonly size: number;
  /** Epoch ms of the last read or write the daemon journaled (or the index time). */
  readonly lastAccess: number;
  /** Manifests are stored with their media type; everything else is a blob. */
  readonly kind: 'blob' | 'manifest';
  readonly mediaType: string | undefined;
  readonly path: string;
}

/** Every entry of the store in `dir`, least recently used first. */
export async function listStoredEntries(dir: string): Promise<StoredEntry[]> {
  const listed = await cacache.ls(dir);
  const { atimes } = await readJournals(dir);
  const entries: StoredEntry[] = [];
  for (const info of Object.values(listed)) {
    if (!info.key.startsWith('blob:')) continue;
    let d: BlobDigest;
    try {
      d = blobDigest(info.key.slice('blob:'.length));
    } catch {
      continue;
    }
    if (String(info.integrity) !== d.integrity) continue;
    const meta = info.metadata as Record<string, unknown> | undefined;
    const mediaType = typeof meta?.['content-type'] === 'string' ? meta['content-type'] : undefined;
    entries.push({
      digest: d.digest,
      size: Number(info.size ?? 0),
      lastAccess: Math.max(atimes.get(d.digest) ?? 0, Number(info.time ?? 0)),
      kind: mediaType === undefined ? 'blob' : 'manifest',
      mediaType,
      path: contentPath(dir, d),
    });
  }
  return entries.sort((a, b) => a.lastAccess - b.lastAccess);
}

/** Re-hashes one entry's content: `ok`, `missing` (no content file) or `corrupt`. */
export async function verifyStoredEntry(
  entry: Pick<StoredEntry, 'digest' | 'path' | 'size'>,
): Promise<'ok' | 'missing' | 'corrupt'> {
  const d = blobDigest(entry.digest);
  const found = await hashFile(entry.path, d.algorithm);
  if (found === undefined) return 'missing';
  return found.hex === d.hex && found.size === entry.size ? 'ok' : 'corrupt';
}

/**
 * Removes entries by digest. Returns which were removed and which were not stored. Running
 * daemons forget them within a few seconds (removal-notes.ts).
 */
export async function removeStoredEntries(
  dir: string,
  digests: readonly string[],
): Promise<{ removed: string[]; absent: string[] }> {
  const removed: string[] = [];
  const absent: string[] = [];
  for (const digest of digests) {
    const d = blobDigest(digest);
    const info = await cacache.get.info(dir, blobKey(d.digest));
    // Index line first: a crash in between leaves an orphan file, which the store sweeps.
    if (info) await removeIndexEntry(dir, blobKey(d.digest));
    let hadFile = true;
    await unlink(contentPath(dir, d)).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
      hadFile = false;
    });
    if (info || hadFile) removed.push(d.digest);
    else absent.push(d.digest);
  }
  await noteRemovals(dir, removed);
  return { removed, absent };
}

/** Every tag-index entry (one per registry, repository, tag, Accept class and auth class). */
export async function listTagEntries(dir: string): Promise<TagEntry[]> {
  const root = join(dir, TAGS_DIR);
  const entries: TagEntry[] = [];
  for (const tagDir of await listDir(root)) {
    for (const file of await listDir(join(root, tagDir))) {
      if (!file.endsWith('.json')) continue;
      try {
        const parsed = JSON.parse(await readFile(join(root, tagDir, file), 'utf8')) as TagEntry;
        if (typeof parsed.digest === 'string' && typeof parsed.name === 'string') entries.push(parsed);
      } catch {
        // Being replaced right now (temp file + rename) or hand-edited: not an entry.
      }
    }
  }
  return entries;
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}
