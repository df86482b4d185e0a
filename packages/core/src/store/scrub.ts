/**
 * The blob store's scrub pass: re-hashes every entry, one file at a time. Corrupt ones are
 * removed (evict reason `corrupt`), ones whose file vanished are forgotten.
 */
import createDebug from 'debug';
import type { ScrubResult } from './content-store.js';
import { contentPath } from './digest.js';
import type { EntryTable } from './entry-table.js';
import { hashFile } from './fs-helpers.js';

const debug = createDebug('drp:store');

/** Checks the entries present when it starts; stops early when the table closes. */
export async function scrubEntries(dir: string, table: EntryTable): Promise<ScrubResult> {
  const corrupt: string[] = [];
  const missing: string[] = [];
  let checked = 0;
  for (const entry of table.entries()) {
    if (table.closed) break;
    // Removed (or replaced) since the pass started: nothing to check.
    if (table.get(entry.d.digest) !== entry) continue;
    const result = await hashFile(contentPath(dir, entry.d), entry.d.algorithm);
    checked += 1;
    if (result === undefined) {
      missing.push(entry.d.digest);
      await table.remove(entry, 'manual');
    } else if (result.hex !== entry.d.hex || result.size !== entry.size) {
      debug('scrub: content of %s is corrupt; removing it', entry.d.digest);
      corrupt.push(entry.d.digest);
      await table.remove(entry, 'corrupt');
    }
  }
  return { checked, corrupt, missing };
}
