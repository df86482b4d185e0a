/**
 * The background scrub (CACHE_SCRUB_INTERVAL): every interval the daemon re-hashes each stored
 * entry, one file at a time, and removes the ones whose bytes no longer match their digest
 * (bit rot, a truncated file, a hand edit), so the next request for them is a miss that
 * fetches good bytes. Blob hits are not re-hashed while they are served: the bytes are streamed
 * from the file as the client reads them, and a mismatch found at the end could not be taken
 * back; the client checks the digest itself and fails the pull. Manifests are small and are
 * re-hashed on every read.
 */
import type { RegistryCache } from '@drp/core';
import type { AccessLog } from './access-log.js';

/** Starts the periodic scrub; returns a function that stops it. 0 ms: no scrub. */
export function startScrub(cache: RegistryCache, intervalMs: number, log: AccessLog | undefined): () => void {
  if (intervalMs <= 0) return () => undefined;
  const timer = setInterval(() => {
    const started = Date.now();
    cache.scrub().then(
      (result) => {
        if (result.corrupt.length === 0 && result.missing.length === 0) return;
        log?.event('warning', `scrub removed ${result.corrupt.length} corrupt entries`, {
          checked: result.checked,
          corrupt: result.corrupt,
          missing: result.missing.length,
          duration: Number(((Date.now() - started) / 1000).toFixed(3)),
        });
      },
      (error: unknown) => log?.event('warning', `scrub failed: ${(error as Error).message}`),
    );
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
