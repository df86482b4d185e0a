/**
 * `drp-server cache verify [--fix]`: re-hashes every stored entry. One line per bad entry,
 * starting with its digest; exit 1 when there was one (also with --fix, which removes them:
 * the cache was not healthy when asked).
 */
import { listStoredEntries, removeStoredEntries, verifyStoredEntry } from '@drp/core';
import type { CacheFlags, CommandIO } from './cache.js';

export async function runVerify(dir: string, flags: CacheFlags, io: CommandIO): Promise<number> {
  const entries = await listStoredEntries(dir);
  const bad: string[] = [];
  for (const entry of entries) {
    const result = await verifyStoredEntry(entry);
    if (result === 'ok') continue;
    // A file removed between listing and hashing (a daemon evicted it) is not damage.
    if (result === 'missing' && !(await stillIndexed(dir, entry.digest))) continue;
    bad.push(entry.digest);
    io.out(
      `${entry.digest} ${result === 'missing' ? 'content file missing' : 'content does not match its digest'}\n`,
    );
  }
  if (flags.fix && bad.length > 0) {
    const { removed } = await removeStoredEntries(dir, bad);
    io.err(`drp-server cache verify: removed ${removed.length} bad entries\n`);
  }
  io.err(`drp-server cache verify: ${entries.length} entries checked, ${bad.length} bad\n`);
  return bad.length > 0 ? 1 : 0;
}

async function stillIndexed(dir: string, digest: string): Promise<boolean> {
  return (await listStoredEntries(dir)).some((e) => e.digest === digest);
}
