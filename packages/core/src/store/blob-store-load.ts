/**
 * Opening the blob store's directory: makes it private, resets the spool, replays the access
 * journal over the cacache index into an entry table, and deletes content files no index line
 * refers to (left by a crash mid-commit or mid-evict).
 */
import { chmod, mkdir, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import cacache from 'cacache';
import createDebug from 'debug';
import { AccessJournal } from './access-journal.js';
import { type BlobDigest, blobDigest } from './digest.js';
import { type Entry, EntryTable, type EntryTableOptions } from './entry-table.js';
import { isMeta, listDir } from './fs-helpers.js';
import type { RemovalNotesReader } from './removal-notes.js';

const debug = createDebug('drp:store');

export const JOURNAL_FILE = 'drp-access.journal';

export interface LoadOptions extends EntryTableOptions {
  readonly spoolDir: string;
  readonly journalFlushMs: number;
  readonly removalNotes: RemovalNotesReader;
}

/** Prepares `dir` and returns its entries, least recently used first. */
export async function loadEntryTable(options: LoadOptions): Promise<EntryTable> {
  const { dir, spoolDir } = options;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // Private whatever the volume came with: the index names digests and auth classes.
  await chmod(dir, 0o700).catch(() => undefined);
  // Spool files are never visible entries: whatever a crash left there is garbage.
  await rm(spoolDir, { recursive: true, force: true });
  // On a full disk even a directory may not fit: fills then pass through uncached.
  await mkdir(spoolDir, { recursive: true, mode: 0o700 }).catch((error: Error) =>
    debug('cannot create the spool directory: %s', error.message),
  );
  // The index read below already reflects every removal noted so far.
  await options.removalNotes.reset();

  const { journal, atimes } = await AccessJournal.open(join(dir, JOURNAL_FILE), options.journalFlushMs);
  const { found, referenced } = await readIndex(dir, atimes);
  const table = new EntryTable(options, journal, found);
  await sweepOrphans(dir, referenced);
  await table.snapshot();
  debug('opened %s: %d entries, %d bytes', dir, table.size, table.bytes);
  return table;
}

/** The blob entries of the cacache index, oldest access first, and every integrity referenced. */
async function readIndex(
  dir: string,
  atimes: Map<string, number>,
): Promise<{ found: Entry[]; referenced: Set<string> }> {
  const listed = await cacache.ls(dir);
  const referenced = new Set<string>();
  const found: Entry[] = [];
  for (const info of Object.values(listed)) {
    if (info.integrity) referenced.add(String(info.integrity));
    if (!info.key.startsWith('blob:')) continue;
    const digest = info.key.slice('blob:'.length);
    let d: BlobDigest;
    try {
      d = blobDigest(digest);
    } catch {
      continue;
    }
    if (String(info.integrity) !== d.integrity) continue;
    found.push({
      d,
      size: Number(info.size ?? 0),
      atime: atimes.get(digest) ?? Number(info.time ?? 0),
      meta: isMeta(info.metadata) ? info.metadata : undefined,
      pins: 0,
    });
  }
  found.sort((a, b) => a.atime - b.atime);
  return { found, referenced };
}

/** Deletes content files no index entry refers to (left by a crash mid-commit or mid-evict). */
async function sweepOrphans(dir: string, referenced: Set<string>): Promise<void> {
  const root = join(dir, 'content-v2');
  for (const algorithm of ['sha256', 'sha512']) {
    const base = join(root, algorithm);
    for (const a of await listDir(base)) {
      for (const b of await listDir(join(base, a))) {
        for (const rest of await listDir(join(base, a, b))) {
          const hex = `${a}${b}${rest}`;
          if (!/^[a-f0-9]+$/.test(hex)) continue;
          const integrity = `${algorithm}-${Buffer.from(hex, 'hex').toString('base64')}`;
          if (referenced.has(integrity)) continue;
          debug('removing orphaned content %s:%s', algorithm, hex);
          await unlink(join(base, a, b, rest)).catch(() => undefined);
        }
      }
    }
  }
}
