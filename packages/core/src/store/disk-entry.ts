/**
 * What the disk says about one digest, for entries another process committed: the cacache
 * index line (size, metadata: kind and auth class, time) and the content file. Both must be
 * there and agree; commit order is rename then index line, so an entry with both is complete.
 */
import { stat } from 'node:fs/promises';
import cacache from 'cacache';
import type { ContentMeta } from './content-store.js';
import { type BlobDigest, blobKey, contentPath } from './digest.js';
import { isMeta } from './fs-helpers.js';

export interface DiskEntry {
  readonly size: number;
  readonly meta: ContentMeta | undefined;
  /** Epoch ms of the index line. */
  readonly time: number;
}

export async function readDiskEntry(dir: string, d: BlobDigest): Promise<DiskEntry | undefined> {
  let info: Awaited<ReturnType<typeof cacache.get.info>>;
  try {
    info = await cacache.get.info(dir, blobKey(d.digest));
  } catch {
    return undefined;
  }
  if (!info || String(info.integrity) !== d.integrity) return undefined;
  const size = Number(info.size ?? -1);
  try {
    if ((await stat(contentPath(dir, d))).size !== size) return undefined;
  } catch {
    return undefined;
  }
  return { size, meta: isMeta(info.metadata) ? info.metadata : undefined, time: Number(info.time ?? 0) };
}
