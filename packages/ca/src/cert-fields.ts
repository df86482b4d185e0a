/**
 * The few fields of a CA certificate drp checks or copies, read from its DER with der.ts (no
 * ASN.1 library at start: see x509.ts). RFC 5280 §4.1: TBSCertificate is version [0],
 * serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, then optional
 * issuerUniqueID [1], subjectUniqueID [2] and extensions [3].
 */
import { readTlv, type Tlv } from './der.js';

export interface CertFields {
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** The DER SubjectPublicKeyInfo, byte for byte. */
  readonly spki: Buffer;
  /** basicConstraints cA; undefined without the extension. */
  readonly basicConstraintsCa: boolean | undefined;
  /** keyUsage has keyCertSign; undefined without the extension. */
  readonly keyCertSign: boolean | undefined;
  /** subjectKeyIdentifier, hex; undefined without the extension. */
  readonly subjectKeyId: string | undefined;
}

const OID_SKI = '551d0e'; // 2.5.29.14
const OID_KEY_USAGE = '551d0f'; // 2.5.29.15
const OID_BASIC_CONSTRAINTS = '551d13'; // 2.5.29.19

function children(der: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let at = parent.contentStart; at < parent.end; ) {
    const item = readTlv(der, at);
    out.push(item);
    at = item.end;
  }
  return out;
}

const content = (der: Uint8Array, t: Tlv) => Buffer.from(der.subarray(t.contentStart, t.end));

/** UTCTime (YYMMDDHHMMSSZ, 1950-2049) or GeneralizedTime (YYYYMMDDHHMMSS[.f]Z). */
function readTime(der: Uint8Array, t: Tlv): Date {
  const text = content(der, t).toString('ascii');
  const m =
    t.tag === 0x17
      ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text)
      : /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.\d+)?Z$/.exec(text);
  if (!m || (t.tag !== 0x17 && t.tag !== 0x18)) throw new Error(`unsupported certificate time ${text}`);
  const [, y = '', mo = '', d = '', h = '', mi = '', s = ''] = m;
  const year = t.tag === 0x17 ? (Number(y) < 50 ? 2000 : 1900) + Number(y) : Number(y);
  return new Date(Date.UTC(year, Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)));
}

export function readCertFields(der: Uint8Array): CertFields {
  const cert = readTlv(der, 0);
  const tbs = readTlv(der, cert.contentStart);
  const fields = children(der, tbs);
  const offset = fields[0]?.tag === 0xa0 ? 1 : 0; // version [0] is optional (v1)
  const validity = fields[offset + 3];
  const spki = fields[offset + 5];
  if (validity?.tag !== 0x30 || spki?.tag !== 0x30) throw new Error('unexpected certificate structure');
  const [notBefore, notAfter] = children(der, validity);
  if (!notBefore || !notAfter) throw new Error('unexpected certificate validity');

  let basicConstraintsCa: boolean | undefined;
  let keyCertSign: boolean | undefined;
  let subjectKeyId: string | undefined;
  const wrapper = fields.slice(offset + 6).find((f) => f.tag === 0xa3);
  const list = wrapper ? readTlv(der, wrapper.contentStart) : undefined;
  for (const extension of list ? children(der, list) : []) {
    const parts = children(der, extension);
    const id = parts[0];
    const value = parts[parts.length - 1];
    if (id?.tag !== 0x06 || value?.tag !== 0x04 || parts.length < 2) throw new Error('unexpected extension');
    const oid = content(der, id).toString('hex');
    const inner = readTlv(der, value.contentStart);
    if (oid === OID_BASIC_CONSTRAINTS) {
      // SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLenConstraint INTEGER OPTIONAL }
      const first = children(der, inner)[0];
      basicConstraintsCa = first?.tag === 0x01 && der[first.contentStart] !== 0;
    } else if (oid === OID_KEY_USAGE) {
      // BIT STRING: unused-bits byte, then bit 0 = digitalSignature ... bit 5 = keyCertSign.
      keyCertSign = inner.end - inner.contentStart > 1 && ((der[inner.contentStart + 1] ?? 0) & 0x04) !== 0;
    } else if (oid === OID_SKI) {
      subjectKeyId = content(der, inner).toString('hex');
    }
  }
  return {
    notBefore: readTime(der, notBefore),
    notAfter: readTime(der, notAfter),
    spki: Buffer.from(der.subarray(spki.start, spki.end)),
    basicConstraintsCa,
    keyCertSign,
    subjectKeyId,
  };
}
