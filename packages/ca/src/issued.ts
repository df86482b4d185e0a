/**
 * What the issuer hands out, kept apart from the issuer itself: these are public types, and the
 * issuer's declarations reach @peculiar/x509, whose types need the DOM lib. Consumers that
 * type-check declarations (skipLibCheck: false) on a Node-only lib must never load them.
 */
import type { LeafKeyType } from './keys.js';

/** Browsers and Go clients accept longer, but the issue caps leaves at 90 days. */
export const MAX_LEAF_DAYS = 90;

export interface IssuedCertificate {
  /** Canonical name: lower-case DNS name, dotted IPv4, or compressed IPv6 without brackets. */
  readonly name: string;
  readonly certPem: string;
  readonly keyPem: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly serialNumber: string;
  readonly keyType: LeafKeyType;
  /** When issue() starts making a replacement (two thirds into the lifetime). */
  readonly renewAt: Date;
}

export interface IssuedEvent {
  readonly name: string;
  readonly notAfter: Date;
  readonly serialNumber: string;
  readonly durationMs: number;
  /** true when this replaced a cached leaf that was due for renewal. */
  readonly renewal: boolean;
}
