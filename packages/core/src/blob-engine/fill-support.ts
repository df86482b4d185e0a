/** What a fill needs from its engine, and the small rules it shares with it. */
import type { Hash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { DrpError } from '../api/errors.js';
import type { CacheEvents } from '../events.js';
import type { ContentStore, ContentWriter } from '../store/content-store.js';
import { type BlobDigest, hasherFor } from '../store/digest.js';
import type { FillInfo } from './types.js';

export interface FillHost {
  /** Where the fill's writer comes from (the store, or the lease of a cross-process fill). */
  readonly store: Pick<ContentStore, 'createWriter'>;
  /** Bytes the writer will already hold (a takeover): upstream is asked for the rest. */
  readonly resumeFrom?: number;
  readonly events: CacheEvents | undefined;
  /** The fill takes no more joiners (it ended, failed or was declined). */
  remove(fill: { readonly digest: string; readonly info: FillInfo }): void;
}

/** A verify-failed reason is reported only for fills that were streaming the blob. */
export function failureReason(
  state: string,
  reason: 'mismatch' | 'truncated' | undefined,
): 'mismatch' | 'truncated' | undefined {
  const streaming = state === 'spooling' || state === 'passing' || state === 'verifying';
  return streaming ? reason : undefined;
}

/**
 * The hash of what a refused writer holds: passing through, the fill verifies by itself, so it
 * hashes the bytes the store had again (read back once; the store verified them until now).
 */
export async function passThroughHash(d: BlobDigest, writer: ContentWriter): Promise<Hash> {
  const hash = hasherFor(d);
  const buffer = Buffer.allocUnsafe(1024 * 1024);
  let position = 0;
  while (position < writer.written) {
    const chunk = await writer.read(
      buffer.subarray(0, Math.min(buffer.length, writer.written - position)),
      position,
    );
    if (chunk.length === 0) throw new Error(`written bytes of ${d.digest} are missing`);
    hash.update(chunk);
    position += chunk.length;
  }
  return hash;
}

/** Resolves when a body ended, rejects when it failed or closed early. */
export function endOf(body: Readable): Promise<void> {
  return new Promise((resolve, reject) => {
    body.once('end', resolve);
    body.once('error', reject);
    body.once('close', () => reject(new DrpError('DRP_UPSTREAM_TRUNCATED', 'upstream closed early')));
  });
}
