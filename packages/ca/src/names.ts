import { isIPv4, isIPv6 } from 'node:net';
import { domainToASCII } from 'node:url';
import { CaError } from './errors.js';

export interface LeafName {
  /** Canonical form: lower-case ASCII DNS name, dotted IPv4, or compressed IPv6 without brackets. */
  readonly name: string;
  readonly kind: 'dns' | 'ip';
}

// RFC 1123 labels; underscore is tolerated because real hostnames carry it and Go/OpenSSL accept it.
const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/**
 * Validates and canonicalises a name for a leaf certificate. Canonical forms make the cache
 * key unique: `Registry.Example.` and `registry.example` share one leaf, `[::1]` and `::1` too.
 */
export function parseLeafName(input: string): LeafName {
  if (typeof input !== 'string' || input.length === 0 || input.length > 255) {
    throw invalid(input, 'must be a non-empty string of at most 255 characters');
  }
  // Whitespace and control characters never belong in a host; the URL parser behind
  // domainToASCII would silently drop some of them, so refuse them here.
  if (/[\s\p{Cc}]/u.test(input)) throw invalid(input, 'contains whitespace or control characters');
  let name = input;
  if (name.startsWith('[') && name.endsWith(']')) name = name.slice(1, -1);
  if (name.includes('%')) throw invalid(input, 'IPv6 zone identifiers are not allowed');
  if (isIPv4(name)) return { name, kind: 'ip' };
  if (isIPv6(name)) {
    // The URL parser compresses and folds embedded IPv4 (::ffff:1.2.3.4 -> ::ffff:102:304),
    // which is also the form the x509 library's IP encoder understands.
    return { name: new URL(`http://[${name}]/`).hostname.slice(1, -1), kind: 'ip' };
  }
  if (name.endsWith('.')) name = name.slice(0, -1);
  // IDNs are certified in their A-label (punycode) form, as clients put them in SNI.
  const ascii = /^[\x21-\x7e]*$/.test(name) ? name.toLowerCase() : domainToASCII(name);
  if (!ascii || ascii.length > 253) throw invalid(input, 'is not a valid DNS name');
  const labels = ascii.split('.');
  for (const [i, label] of labels.entries()) {
    if (label === '*' && i === 0 && labels.length > 2) continue; // wildcard, never for a TLD
    if (!LABEL.test(label)) throw invalid(input, 'is not a valid DNS name');
  }
  // A numeric last label would make "1.2.3" look like an (invalid) address, not a host.
  if (/^[0-9]+$/.test(labels[labels.length - 1] ?? '')) throw invalid(input, 'is not a valid DNS name');
  return { name: ascii, kind: 'dns' };
}

function invalid(input: unknown, why: string): CaError {
  const shown = typeof input === 'string' ? JSON.stringify(input.slice(0, 80)) : String(input);
  return new CaError('CA_INVALID_NAME', `Cannot issue a certificate for ${shown}: ${why}`);
}
