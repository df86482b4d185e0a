/**
 * Opening the blob store's directory, which other processes may be using right now: makes it
 * private, collects spool files dead processes left (never a live one's: spool-gc.ts), replays
 * every process's access journal over the cacache index into an entry table, and deletes
 * content files no index line refers to (left by a crash mid-commit or mid-evict) once they
 * are older than the grace, so a file another process just renamed into place and is about to
 * index stays.
 */
import { chmod, mkdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import cacache from 'cacache';
import createDebug from 'debug';
import { AccessJournal, readJournals } from './access-journal.js';
import { type BlobDigest, blobDigest } from './digest.js';
import { type Entry, EntryTable, type EntryTableOptions, newEntry } from './entry-table.js';
import { isMeta, listDir } from './fs-helpers.js';
import type { JournalTail } from './journal-tail.js';
import type { RemovalNotesReader } from './removal-notes.js';
import { collectStale } from './spool-gc.js';

const debug = createDebug('drp:store');

export { JOURNAL_FILE } from './access-journal.js';

/** Spool files: `<uuid>.part`. */
export const SPOOL_FILE = /\.part$/;

export interface LoadOptions extends EntryTableOptions {
  readonly spoolDir: string;
  readonly journalFlushMs: number;
  readonly removalNotes: RemovalNotesReader;
  /** This process's id (its journal file's name). */
  readonly id: string;
  readonly spoolGraceMs: number;
  readonly orphanGraceMs: number;
}

/** Prepares `dir` and returns its entries (least recently used first) and the journals read. */
export async function loadEntryTable(
  options: LoadOptions,
): Promise<{ table: EntryTable; tails: Map<string, JournalTail> }> {
  const { dir, spoolDir } = options;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // Private whatever the volume came with: the index names digests and auth classes.
  await chmod(dir, 0o700).catch(() => undefined);
  // On a full disk even a directory may not fit: fills then pass through uncached.
  await mkdir(spoolDir, { recursive: true, mode: 0o700 }).catch((error: Error) =>
    debug('cannot create the spool directory: %s', error.message),
  );
  // Spool files are never visible entries; only dead writers' ones are garbage.
  await collectStale(spoolDir, SPOOL_FILE, options.spoolGraceMs);
  // The index read below already reflects every removal noted so far.
  await options.removalNotes.skipToEnd();

  const { atimes, tails } = await readJournals(dir);
  const { found, referenced } = await readIndex(dir, atimes);
  const journal = new AccessJournal(dir, options.id, options.journalFlushMs);
  const table = new EntryTable(options, journal, found);
  await sweepOrphans(dir, referenced, options.orphanGraceMs);
  debug('opened %s: %d entries, %d bytes', dir, table.size, table.bytes);
  return { table, tails };
}

/** The blob entries of the cacache index, oldest access first, and every integrity referenced. */
export async function readIndex(
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
    const meta = isMeta(info.metadata) ? info.metadata : undefined;
    found.push(newEntry(d, Number(info.size ?? 0), meta, atimes.get(digest) ?? Number(info.time ?? 0)));
  }
  found.sort((a, b) => a.atime - b.atime);
  return { found, referenced };
}

/**
 * Deletes content files no index entry refers to (left by a crash mid-commit or mid-evict),
 * once older than `graceMs`: a younger one may be another process's commit between its rename
 * and its index line.
 */
async function sweepOrphans(dir: string, referenced: Set<string>, graceMs: number): Promise<void> {
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
          const path = join(base, a, b, rest);
          const young = await stat(path).then(
            (st) => Date.now() - st.mtimeMs <= graceMs,
            () => true,
          );
          if (young) continue;
          debug('removing orphaned content %s:%s', algorithm, hex);
          await unlink(path).catch(() => undefined);
        }
      }
    }
  }
}
