/**
 * Reading the blob store's entries: a pinned open file handle for streaming, or a small blob
 * read whole and re-hashed. A content file that vanished behind the store's back drops its
 * entry (the caller fetches the blob again); a corrupt small blob is removed.
 */
import { createHash } from 'node:crypto';
import { type FileHandle, open, readFile } from 'node:fs/promises';
import createDebug from 'debug';
import { DrpError } from '../api/errors.js';
import type { BlobHandle, BlobMeta, StoredBlob } from './blob-store-types.js';
import { contentPath } from './digest.js';
import type { Entry, EntryTable } from './entry-table.js';
import { readAt } from './fs-helpers.js';

const debug = createDebug('drp:store');

export function describeEntry(dir: string, entry: Entry): StoredBlob {
  return { digest: entry.d.digest, size: entry.size, path: contentPath(dir, entry.d), meta: entry.meta };
}

/** Opens the entry's content file, pinned until `release()`; undefined when it is gone. */
export async function openEntry(
  dir: string,
  table: EntryTable,
  entry: Entry,
): Promise<BlobHandle | undefined> {
  const digest = entry.d.digest;
  table.pin(entry);
  let file: FileHandle;
  try {
    file = await open(contentPath(dir, entry.d), 'r');
  } catch (error) {
    table.unpin(entry);
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      // Removed behind our back: forget it, the caller fetches it again.
      debug('content of %s is missing; dropping the entry', digest);
      void table.remove(entry, 'manual');
      return undefined;
    }
    throw new DrpError('DRP_CACHE_IO', `cannot open cached blob ${digest}`, { cause: error });
  }
  table.touch(entry);
  let released = false;
  return {
    ...describeEntry(dir, entry),
    file,
    read: (into, position) => readAt(file.fd, into, position),
    release: async () => {
      if (released) return;
      released = true;
      table.unpin(entry);
      await file.close().catch(() => undefined);
      if (entry.pins === 0) table.enforceCap();
    },
  };
}

/** Reads the entry whole, re-checking its digest (a corrupted file reads as a miss). */
export async function readEntry(
  dir: string,
  table: EntryTable,
  entry: Entry,
): Promise<{ data: Buffer; meta: BlobMeta | undefined } | undefined> {
  const digest = entry.d.digest;
  table.pin(entry);
  try {
    const data = await readFile(contentPath(dir, entry.d));
    if (createHash(entry.d.algorithm).update(data).digest('hex') !== entry.d.hex) {
      debug('content of %s is corrupt; removing it', digest);
      table.unpin(entry);
      const current = table.get(digest);
      if (current) await table.remove(current, 'manual');
      return undefined;
    }
    table.unpin(entry);
    table.touch(entry);
    return { data, meta: entry.meta };
  } catch (error) {
    table.unpin(entry);
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      void table.remove(entry, 'manual');
      return undefined;
    }
    throw new DrpError('DRP_CACHE_IO', `cannot read cached blob ${digest}`, { cause: error });
  }
}
