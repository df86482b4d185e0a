/**
 * Moving a verified spool file into the blob store: rename into the content tree (atomic, same
 * file system), then the index line, so a crash leaves at worst an unreferenced content file
 * that the next open sweeps away. Also writes a small buffer to a spool file for `putBuffer`.
 */
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import cacache from 'cacache';
import createDebug from 'debug';
import { DrpError } from '../api/errors.js';
import type { CacheEvents } from '../events.js';
import type { ContentMeta, WriteContext } from './content-store.js';
import { blobDigest, blobKey, contentPath } from './digest.js';
import type { EntryTable } from './entry-table.js';

const debug = createDebug('drp:store');

export interface CommitTarget {
  readonly dir: string;
  readonly table: EntryTable;
  readonly maxSizeBytes: number;
  readonly events?: CacheEvents | undefined;
}

export interface SpoolFile {
  readonly digest: string;
  readonly path: string;
  readonly size: number;
  readonly meta?: ContentMeta | undefined;
  readonly context: WriteContext;
}

/** Returns false (and removes the spool file) when the blob is not stored. */
export async function commitSpoolFile(target: CommitTarget, spool: SpoolFile): Promise<boolean> {
  const { dir, table, events } = target;
  const { digest, size, meta, context } = spool;
  const d = blobDigest(digest);
  const started = performance.now();
  const discard = () => unlink(spool.path).catch(() => undefined);
  if (table.closed) {
    await discard();
    return false;
  }
  if (size > target.maxSizeBytes) {
    await discard();
    events?.publish('store-skipped', {
      ...eventContext(context),
      digest,
      size,
      reason: 'larger than the cache',
    });
    return false;
  }
  const existing = await table.present(table.get(digest));
  if (existing) {
    await discard();
    table.touch(existing);
    return true;
  }
  await table.removed(digest);
  const content = contentPath(dir, d);
  try {
    await mkdir(dirname(content), { recursive: true, mode: 0o700 });
    await rename(spool.path, content);
    await cacache.index.insert(dir, blobKey(digest), d.integrity, {
      size,
      ...(meta ? { metadata: meta } : {}),
    });
  } catch (error) {
    debug('commit of %s failed: %s', digest, (error as Error).message);
    await discard();
    // The rename may have happened: a content file without an index line is garbage.
    if (!table.has(digest)) await unlink(content).catch(() => undefined);
    const reason = (error as NodeJS.ErrnoException).code ?? 'commit failed';
    events?.publish('store-skipped', { ...eventContext(context), digest, size, reason });
    return false;
  }
  await table.add(d, size, meta, performance.now() - started);
  return true;
}

/** Writes and syncs `data` to a new spool file at `path` (mode 0600). */
export async function writeSpoolFile(path: string, digest: string, data: Buffer): Promise<void> {
  const file = await open(path, 'w', 0o600);
  try {
    await file.writeFile(data);
    await file.datasync();
  } catch (error) {
    await file.close().catch(() => undefined);
    await unlink(path).catch(() => undefined);
    throw new DrpError('DRP_CACHE_IO', `cannot store ${digest}`, { cause: error });
  }
  await file.close();
}

/** Registry and name of a write, and its announced size, for the store's events. */
export function eventContext(context: WriteContext): { registry?: string; name?: string; size: number } {
  return {
    size: context.size ?? 0,
    ...(context.registry === undefined ? {} : { registry: context.registry }),
    ...(context.name === undefined ? {} : { name: context.name }),
  };
}
