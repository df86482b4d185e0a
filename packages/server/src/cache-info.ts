/**
 * What a daemon records about itself in the cache directory at start (`drp-daemon.json`), for
 * the operator tools that read the directory from outside: the size cap it enforces. Written
 * atomically (temp file + rename); the last daemon started on a directory wins.
 */
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const CACHE_INFO_FILE = 'drp-daemon.json';

export interface CacheInfo {
  /** CACHE_MAX_SIZE in bytes; null when the cache has no cap. */
  readonly maxBytes: number | null;
  readonly version: string;
  readonly pid: number;
  /** ISO 8601 UTC. */
  readonly startedAt: string;
}

export async function writeCacheInfo(cacheDir: string, info: CacheInfo): Promise<void> {
  const file = join(cacheDir, CACHE_INFO_FILE);
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    await writeFile(tmp, `${JSON.stringify(info)}\n`);
    await rename(tmp, file);
  } catch (error) {
    // A full disk (ENOSPC) leaves a partial temp file behind: remove it.
    await rm(tmp, { force: true });
    throw error;
  }
}

/** The recorded info, or undefined when no daemon has run on `cacheDir` (or the file is unreadable). */
export async function readCacheInfo(cacheDir: string): Promise<CacheInfo | undefined> {
  try {
    const parsed = JSON.parse(await readFile(join(cacheDir, CACHE_INFO_FILE), 'utf8')) as Partial<CacheInfo>;
    if (parsed.maxBytes !== null && typeof parsed.maxBytes !== 'number') return undefined;
    return parsed as CacheInfo;
  } catch {
    return undefined;
  }
}
