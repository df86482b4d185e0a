/**
 * `drp-server cache rm DIGEST...` and `cache prune --max-size SIZE | --older-than DURATION`.
 * Prune works like the daemon's own cap and expiry (least recently used first) but on demand;
 * it re-lists after removing, because a daemon may store more meanwhile, and stops after a few
 * passes rather than chase a running pull.
 */
import {
  listStoredEntries,
  parseDuration,
  parseSize,
  removeStoredEntries,
  type StoredEntry,
} from '@drp/core';
import type { CacheFlags, CommandIO } from './cache.js';
import { humanBytes, UsageError } from './output.js';

const DIGEST = /^(?:(sha256|sha512):)?([a-f0-9]{64}|[a-f0-9]{128})$/;

export function normaliseDigest(text: string): string {
  const match = DIGEST.exec(text.trim().toLowerCase());
  if (!match) throw new UsageError(`not a digest: ${JSON.stringify(text)} (sha256:<hex> or <hex>)`);
  const hex = match[2] ?? '';
  return `${match[1] ?? (hex.length === 128 ? 'sha512' : 'sha256')}:${hex}`;
}

export async function runRm(dir: string, args: readonly string[], io: CommandIO): Promise<number> {
  if (args.length === 0) throw new UsageError('rm needs at least one digest');
  const digests = args.map(normaliseDigest);
  const { removed, absent } = await removeStoredEntries(dir, digests);
  for (const digest of removed) io.out(`removed ${digest}\n`);
  for (const digest of absent) io.err(`drp-server cache rm: ${digest} is not in the cache\n`);
  return absent.length > 0 ? 1 : 0;
}

const PASSES = 3;

export async function runPrune(dir: string, flags: CacheFlags, io: CommandIO): Promise<number> {
  const sizeText = flags['max-size'];
  const ageText = flags['older-than'];
  if (sizeText === undefined && ageText === undefined)
    throw new UsageError('prune needs --max-size SIZE or --older-than DURATION');
  const maxBytes = sizeText === undefined ? undefined : parseSize(sizeText);
  if (sizeText !== undefined && maxBytes === undefined)
    throw new UsageError(`--max-size: not a size: ${JSON.stringify(sizeText)} (e.g. 500m, 32g)`);
  const maxAge = ageText === undefined ? undefined : parseDuration(ageText);
  if (ageText !== undefined && maxAge === undefined)
    throw new UsageError(`--older-than: not a duration: ${JSON.stringify(ageText)} (e.g. 12h, 30d)`);

  // One cutoff for every pass: "not used for DURATION" as of when prune was started.
  const cutoff = maxAge === undefined ? undefined : Date.now() - maxAge;
  let removedCount = 0;
  let removedBytes = 0;
  for (let pass = 0; pass < PASSES; pass += 1) {
    const entries = await listStoredEntries(dir);
    const victims = pick(entries, maxBytes, cutoff);
    if (victims.length === 0) break;
    if (flags['dry-run']) {
      for (const v of victims) io.out(`would remove ${v.digest} ${v.size}\n`);
      removedCount = victims.length;
      removedBytes = victims.reduce((s, v) => s + v.size, 0);
      break;
    }
    const { removed } = await removeStoredEntries(
      dir,
      victims.map((v) => v.digest),
    );
    const sizes = new Map(victims.map((v) => [v.digest, v.size]));
    for (const digest of removed) {
      io.out(`removed ${digest}\n`);
      removedBytes += sizes.get(digest) ?? 0;
    }
    removedCount += removed.length;
  }
  const left = await listStoredEntries(dir);
  const leftBytes = left.reduce((s, e) => s + e.size, 0);
  io.err(
    `drp-server cache prune: ${flags['dry-run'] ? 'would remove' : 'removed'} ${removedCount} entries (${humanBytes(removedBytes)}); ${left.length} entries (${humanBytes(leftBytes)}) left\n`,
  );
  return 0;
}

/** Entries (oldest use first) to remove so that what is left meets both bounds. */
function pick(
  entries: readonly StoredEntry[],
  maxBytes: number | undefined,
  cutoff: number | undefined,
): StoredEntry[] {
  const victims: StoredEntry[] = [];
  let total = entries.reduce((s, e) => s + e.size, 0);
  for (const entry of entries) {
    const tooOld = cutoff !== undefined && entry.lastAccess < cutoff;
    const tooBig = maxBytes !== undefined && total > maxBytes;
    if (!tooOld && !tooBig) continue;
    victims.push(entry);
    total -= entry.size;
  }
  return victims;
}
