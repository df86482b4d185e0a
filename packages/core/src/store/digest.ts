/**
 * OCI digests as cacache sees them: `sha256:<hex>` <-> `sha256-<base64>` (Subresource
 * Integrity), and the content path cacache uses for it, so that content lives at the digest's
 * own hash and a blob stored once is found by every repository and registry.
 */
import { createHash, type Hash } from 'node:crypto';
import { join } from 'node:path';
import { parseDigest } from '../api/route.js';

export type DigestAlgorithm = 'sha256' | 'sha512';

export interface BlobDigest {
  /** `sha256:<hex>` exactly as the registry API names it. */
  readonly digest: string;
  readonly algorithm: DigestAlgorithm;
  readonly hex: string;
  /** `sha256-<base64>`, the integrity string cacache stores content under. */
  readonly integrity: string;
}

/** Validates (DRP_DIGEST_INVALID) and converts. Only sha256 and sha512 get this far. */
export function blobDigest(digest: string): BlobDigest {
  const { algorithm, hex } = parseDigest(digest);
  const alg = algorithm as DigestAlgorithm;
  return {
    digest,
    algorithm: alg,
    hex,
    integrity: `${alg}-${Buffer.from(hex, 'hex').toString('base64')}`,
  };
}

export function hasherFor(d: BlobDigest): Hash {
  return createHash(d.algorithm);
}

/** cacache 20's content layout: `content-v2/<algo>/<hex[0:2]>/<hex[2:4]>/<hex[4:]>`. */
export function contentPath(cacheDir: string, d: BlobDigest): string {
  return join(cacheDir, 'content-v2', d.algorithm, d.hex.slice(0, 2), d.hex.slice(2, 4), d.hex.slice(4));
}

/** The cacache index key of a blob. Other users of the same directory use other prefixes. */
export function blobKey(digest: string): string {
  return `blob:${digest}`;
}
