/**
 * `drp-server cache stats|ls|verify|rm|prune`: the operator's view of a cache directory, safe
 * while daemons serve it (see @drp/core's store/offline.ts for how removals reach them).
 *
 * Exit status: 0 done, 1 something was not as asked (a corrupt entry, an absent digest), 2 usage.
 */
import { parseArgs } from 'node:util';
import { listStoredEntries, listTagEntries } from '@drp/core';
import { readCacheInfo } from '../cache-info.js';
import { runLs } from './cache-ls.js';
import { runPrune, runRm } from './cache-prune.js';
import { runVerify } from './cache-verify.js';
import { humanBytes, table, UsageError } from './output.js';

export const CACHE_USAGE = `Usage: drp-server cache <command> [--cache-dir DIR] [options]
  stats [--json]                        entries, bytes, the daemon's cap, tag-index entries
  ls [--json] [--kind blob|manifest] [--repo NAME] [--registry HOST[:PORT]] [--sort size|age]
                                        every stored entry (repo/registry: what the tag index knows)
  verify [--fix]                        re-hash every entry; exit 1 and list bad ones (--fix removes them)
  rm DIGEST...                          remove entries (sha256:<hex> or <hex>); exit 1 if one was absent
  prune --max-size SIZE | --older-than DURATION [--dry-run]
                                        remove least recently used entries down to SIZE (e.g. 10g),
                                        or entries not used for DURATION (e.g. 30d)
--cache-dir defaults to CACHE_DIR. Safe while drp-server runs on the directory.
`;

export interface CommandIO {
  out(text: string): void;
  err(text: string): void;
}

export const processIO: CommandIO = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

const OPTIONS = {
  'cache-dir': { type: 'string' },
  json: { type: 'boolean' },
  fix: { type: 'boolean' },
  kind: { type: 'string' },
  repo: { type: 'string' },
  registry: { type: 'string' },
  sort: { type: 'string' },
  'max-size': { type: 'string' },
  'older-than': { type: 'string' },
  'dry-run': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export type CacheFlags = ReturnType<
  typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>
>['values'];

/** Runs one `cache` subcommand; resolves to the exit status. */
export async function runCache(
  argv: readonly string[],
  defaultCacheDir: () => string,
  io: CommandIO = processIO,
): Promise<number> {
  let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    io.err(`drp-server cache: ${(error as Error).message}\n${CACHE_USAGE}`);
    return 2;
  }
  const [command, ...rest] = parsed.positionals;
  const flags = parsed.values;
  if (flags.help || command === undefined) {
    (flags.help ? io.out : io.err)(CACHE_USAGE);
    return flags.help ? 0 : 2;
  }
  try {
    const dir = flags['cache-dir'] ?? defaultCacheDir();
    if (command !== 'rm' && rest.length > 0) throw new UsageError(`unexpected argument ${rest[0]}`);
    switch (command) {
      case 'stats':
        return await runStats(dir, flags, io);
      case 'ls':
        return await runLs(dir, flags, io);
      case 'verify':
        return await runVerify(dir, flags, io);
      case 'rm':
        return await runRm(dir, rest, io);
      case 'prune':
        return await runPrune(dir, flags, io);
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`drp-server cache: ${error.message}\n${CACHE_USAGE}`);
      return 2;
    }
    throw error;
  }
}

async function runStats(dir: string, flags: CacheFlags, io: CommandIO): Promise<number> {
  const [entries, tags, info] = await Promise.all([
    listStoredEntries(dir),
    listTagEntries(dir),
    readCacheInfo(dir),
  ]);
  const stats = {
    blobs: entries.length,
    bytes: entries.reduce((sum, e) => sum + e.size, 0),
    maxBytes: info?.maxBytes ?? null,
    tags: tags.length,
  };
  if (flags.json) {
    io.out(`${JSON.stringify(stats)}\n`);
    return 0;
  }
  const manifests = entries.filter((e) => e.kind === 'manifest').length;
  const cap = stats.maxBytes === null ? 'none recorded' : humanBytes(stats.maxBytes);
  const used = stats.maxBytes ? ` (${((stats.bytes / stats.maxBytes) * 100).toFixed(1)}% of the cap)` : '';
  io.out(
    table(
      ['', ''],
      [
        ['directory', dir],
        ['entries', `${stats.blobs} (${stats.blobs - manifests} blobs, ${manifests} manifests)`],
        ['bytes', `${stats.bytes} (${humanBytes(stats.bytes)})${used}`],
        ['cap', cap],
        ['tag-index entries', String(stats.tags)],
      ],
    ).replace(/^\n/, ''),
  );
  return 0;
}
