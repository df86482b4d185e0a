import {
  BOOLEAN_TRUE,
  bitString,
  ecdsaSignatureToDer,
  explicit,
  implicit,
  octetString,
  oid,
  sequence,
  set,
  smallInteger,
  time,
  unsignedInteger,
  utf8String,
} from './der.js';
import { crypto, type SigningKey } from './keys.js';
import type { LeafName } from './names.js';

const OID = {
  organization: oid('2.5.4.10'),
  commonName: oid('2.5.4.3'),
  subjectKeyIdentifier: oid('2.5.29.14'),
  keyUsage: oid('2.5.29.15'),
  subjectAltName: oid('2.5.29.17'),
  basicConstraints: oid('2.5.29.19'),
  authorityKeyIdentifier: oid('2.5.29.35'),
  extKeyUsage: oid('2.5.29.37'),
  serverAuth: oid('1.3.6.1.5.5.7.3.1'),
};

const extension = (id: Buffer, critical: boolean, value: Buffer) =>
  critical ? sequence(id, BOOLEAN_TRUE, octetString(value)) : sequence(id, octetString(value));

// Shared by every leaf: critical basicConstraints CA:FALSE, serverAuth only.
const BASIC_CONSTRAINTS_LEAF = extension(OID.basicConstraints, true, sequence());
const EXT_KEY_USAGE_SERVER = extension(OID.extKeyUsage, false, sequence(OID.serverAuth));
// keyUsage bits (RFC 5280 §4.2.1.3): digitalSignature = bit 0; RSA key exchange also needs
// keyEncipherment = bit 2. Encoded as BIT STRING with the unused trailing bits counted.
const KEY_USAGE_EC = extension(OID.keyUsage, true, Buffer.from([0x03, 0x02, 0x07, 0x80]));
const KEY_USAGE_RSA = extension(OID.keyUsage, true, Buffer.from([0x03, 0x02, 0x05, 0xa0]));

export interface LeafTemplate {
  /** DER of the CA's subject, copied byte for byte: Go matches issuer to subject exactly. */
  readonly issuer: Buffer;
  /** The CA's key identifier (its SKI when present). */
  readonly authorityKeyId: Buffer;
  readonly signingKey: SigningKey;
  readonly rsaLeaf: boolean;
}

export interface LeafFields {
  readonly name: LeafName;
  readonly serial: Buffer;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** DER SubjectPublicKeyInfo of the leaf key. */
  readonly spki: Buffer;
  readonly subjectKeyId: Buffer;
}

/** Builds and signs a leaf (RFC 5280 profile, v3). The signature runs on the libuv pool. */
export async function buildLeaf(template: LeafTemplate, fields: LeafFields): Promise<Buffer> {
  const { name } = fields;
  // CN is informational (clients match the SAN) and limited to 64 characters.
  const subject = sequence(
    set(sequence(OID.organization, utf8String('drp'))),
    set(sequence(OID.commonName, utf8String(name.name.length <= 64 ? name.name : 'drp leaf'))),
  );
  const generalName =
    name.kind === 'ip' ? implicit(7, ipBytes(name.name)) : implicit(2, Buffer.from(name.name, 'ascii'));
  const extensions = sequence(
    BASIC_CONSTRAINTS_LEAF,
    template.rsaLeaf ? KEY_USAGE_RSA : KEY_USAGE_EC,
    EXT_KEY_USAGE_SERVER,
    extension(OID.subjectAltName, false, sequence(generalName)),
    extension(OID.authorityKeyIdentifier, false, sequence(implicit(0, template.authorityKeyId))),
    extension(OID.subjectKeyIdentifier, false, octetString(fields.subjectKeyId)),
  );
  const tbs = sequence(
    explicit(0, smallInteger(2)), // v3
    unsignedInteger(fields.serial),
    template.signingKey.algorithmIdentifier,
    template.issuer,
    sequence(time(fields.notBefore), time(fields.notAfter)),
    subject,
    fields.spki,
    explicit(3, extensions),
  );
  const key = template.signingKey;
  const raw = Buffer.from(await crypto.subtle.sign(key.signingAlgorithm, key.privateKey, tbs));
  const signature = key.family === 'ecdsa' ? ecdsaSignatureToDer(raw) : raw;
  return sequence(tbs, key.algorithmIdentifier, bitString(signature));
}

/** 4 or 16 network-order bytes for a canonical IPv4 / IPv6 literal (see names.ts). */
export function ipBytes(ip: string): Buffer {
  if (!ip.includes(':')) return Buffer.from(ip.split('.').map(Number));
  const [head = '', tail = ''] = ip.split('::');
  const left = head ? head.split(':') : [];
  const right = ip.includes('::') ? (tail ? tail.split(':') : []) : [];
  const groups = [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  const out = Buffer.alloc(16);
  groups.forEach((group, i) => {
    out.writeUInt16BE(Number.parseInt(group, 16), i * 2);
  });
  return out;
}
