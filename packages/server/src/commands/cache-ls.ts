/**
 * `drp-server cache ls`: every stored entry. The store is content-addressed, so which
 * repository an entry belongs to is known only through the tag index (tag -> manifest) and the
 * manifests themselves (index -> manifests -> config and layers); `--repo` and `--registry`
 * filter on that, and entries nothing refers to match neither.
 */
import { readFile } from 'node:fs/promises';
import { listStoredEntries, listTagEntries, type StoredEntry } from '@drp/core';
import type { CacheFlags, CommandIO } from './cache.js';
import { humanBytes, table, UsageError } from './output.js';

/** digest -> the `registry/name` repositories that reach it. */
async function owners(dir: string, entries: readonly StoredEntry[]): Promise<Map<string, Set<string>>> {
  const byDigest = new Map(entries.map((e) => [e.digest, e]));
  const result = new Map<string, Set<string>>();
  const queue: [string, string][] = [];
  for (const tag of await listTagEntries(dir)) queue.push([tag.digest, `${tag.registry}/${tag.name}`]);
  while (queue.length > 0) {
    const [digest, repo] = queue.pop() as [string, string];
    const set = result.get(digest) ?? new Set<string>();
    if (set.has(repo)) continue;
    set.add(repo);
    result.set(digest, set);
    const entry = byDigest.get(digest);
    if (entry?.kind !== 'manifest') continue;
    for (const child of await referencedDigests(entry.path)) queue.push([child, repo]);
  }
  return result;
}

async function referencedDigests(path: string): Promise<string[]> {
  try {
    const manifest = JSON.parse(await readFile(path, 'utf8')) as {
      config?: { digest?: unknown };
      layers?: { digest?: unknown }[];
      manifests?: { digest?: unknown }[];
    };
    return [manifest.config, ...(manifest.layers ?? []), ...(manifest.manifests ?? [])]
      .map((d) => d?.digest)
      .filter((d): d is string => typeof d === 'string');
  } catch {
    return [];
  }
}

export async function runLs(dir: string, flags: CacheFlags, io: CommandIO): Promise<number> {
  const sort = flags.sort ?? 'age';
  if (sort !== 'size' && sort !== 'age') throw new UsageError('--sort takes size or age');
  if (flags.kind !== undefined && flags.kind !== 'blob' && flags.kind !== 'manifest')
    throw new UsageError('--kind takes blob or manifest');
  let entries = await listStoredEntries(dir);
  const repos =
    flags.repo !== undefined || flags.registry !== undefined || !flags.json
      ? await owners(dir, entries)
      : undefined;
  entries = entries.filter((e) => {
    if (flags.kind !== undefined && e.kind !== flags.kind) return false;
    const of = [...(repos?.get(e.digest) ?? [])];
    if (flags.registry !== undefined && !of.some((r) => r.startsWith(`${flags.registry}/`))) return false;
    if (flags.repo !== undefined && !of.some((r) => r.slice(r.indexOf('/') + 1) === flags.repo)) return false;
    return true;
  });
  // Default: oldest use first (what prune removes first); size: biggest first.
  if (sort === 'size') entries.sort((a, b) => b.size - a.size);
  if (flags.json) {
    const out = entries.map((e) => ({
      digest: e.digest,
      size: e.size,
      lastAccess: new Date(e.lastAccess).toISOString(),
      kind: e.kind,
    }));
    io.out(`${JSON.stringify(out)}\n`);
    return 0;
  }
  const rows = entries.map((e) => [
    e.digest.slice(0, 19),
    e.kind,
    humanBytes(e.size),
    new Date(e.lastAccess).toISOString().replace(/\.\d+Z$/, 'Z'),
    [...(repos?.get(e.digest) ?? [])].join(' '),
  ]);
  io.out(table(['DIGEST', 'KIND', 'SIZE', 'LAST USED', 'REPOSITORIES'], rows, [false, false, true]));
  io.out(`${entries.length} entries, ${humanBytes(entries.reduce((s, e) => s + e.size, 0))}\n`);
  return 0;
}
