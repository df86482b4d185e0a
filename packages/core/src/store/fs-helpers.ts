/**
 * Small file-system helpers of the blob store and the offline cache tools: reading at an offset,
 * hashing a file, listing a directory that may be absent, removing a cacache index entry, and
 * checking index metadata.
 */
import { createHash } from 'node:crypto';
import { createReadStream, read } from 'node:fs';
import { readdir } from 'node:fs/promises';
import cacache from 'cacache';
import { DrpError } from '../api/errors.js';
import type { ContentMeta } from './content-store.js';

/** cacache 20 supports `removeFully` (drop the bucket file), its typings do not declare it. */
const rmEntry = cacache.rm.entry as (
  cache: string,
  key: string,
  opts: { removeFully: boolean },
) => Promise<unknown>;

export function removeIndexEntry(dir: string, key: string): Promise<unknown> {
  return rmEntry(dir, key, { removeFully: true });
}

/** Reads into `into` at `position` of an open file (callback fs.read: no FileHandle promise per chunk). */
export function readAt(fd: number, into: Buffer, position: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    read(fd, into, 0, into.length, position, (error, bytesRead) => {
      if (error) reject(new DrpError('DRP_CACHE_IO', 'reading a cached blob failed', { cause: error }));
      else resolve(into.subarray(0, bytesRead));
    });
  });
}

export async function listDir(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}

export function isMeta(value: unknown): value is ContentMeta {
  return (
    typeof value === 'object' &&
    value !== null &&
    Object.values(value as Record<string, unknown>).every((v) => typeof v === 'string')
  );
}

export function sameMeta(a: ContentMeta | undefined, b: ContentMeta | undefined): boolean {
  if (b === undefined) return true;
  if (a === undefined) return false;
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}

/** Hash and size of a file, or undefined when it does not exist. */
export async function hashFile(
  path: string,
  algorithm: string,
): Promise<{ hex: string; size: number } | undefined> {
  const hash = createHash(algorithm);
  let size = 0;
  try {
    for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
      size += chunk.length;
      hash.update(chunk);
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  return { hex: hash.digest('hex'), size };
}
