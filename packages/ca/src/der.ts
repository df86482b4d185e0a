/**
 * The few DER encodings a leaf certificate needs (X.690). Small on purpose: building a leaf
 * with a general ASN.1 library costs ~5 ms of event-loop CPU per leaf on a small VM, this
 * costs microseconds. Everything encoded here is checked by openssl, Node, Go and
 * @peculiar/x509 in the tests.
 */

export function tlv(tag: number, content: Buffer): Buffer {
  const n = content.length;
  let header: Buffer;
  if (n < 0x80) header = Buffer.from([tag, n]);
  else if (n < 0x100) header = Buffer.from([tag, 0x81, n]);
  else if (n < 0x10000) header = Buffer.from([tag, 0x82, n >> 8, n & 0xff]);
  else header = Buffer.from([tag, 0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]);
  return Buffer.concat([header, content]);
}

export const sequence = (...items: Buffer[]) => tlv(0x30, Buffer.concat(items));
export const set = (...items: Buffer[]) => tlv(0x31, Buffer.concat(items));
export const octetString = (content: Buffer) => tlv(0x04, content);
export const utf8String = (text: string) => tlv(0x0c, Buffer.from(text, 'utf8'));
/** Context-specific tag `n`, constructed (EXPLICIT wrappers). */
export const explicit = (n: number, content: Buffer) => tlv(0xa0 | n, content);
/** Context-specific tag `n`, primitive (IMPLICIT primitive values, e.g. GeneralName dNSName). */
export const implicit = (n: number, content: Buffer) => tlv(0x80 | n, content);
export const BOOLEAN_TRUE = Buffer.from([0x01, 0x01, 0xff]);
export const NULL = Buffer.from([0x05, 0x00]);

/** BIT STRING with no unused bits. */
export const bitString = (content: Buffer) => tlv(0x03, Buffer.concat([Buffer.from([0]), content]));

/** A non-negative INTEGER from big-endian bytes: minimal, with a 0x00 when the top bit is set. */
export function unsignedInteger(bytes: Buffer): Buffer {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  const trimmed = bytes.subarray(start);
  return tlv(0x02, (trimmed[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed);
}

export function smallInteger(value: number): Buffer {
  return unsignedInteger(Buffer.from([value]));
}

export function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const bytes: number[] = [40 * (parts[0] ?? 0) + (parts[1] ?? 0)];
  for (const part of parts.slice(2)) {
    const chunk = [part & 0x7f];
    for (let v = Math.floor(part / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift((v & 0x7f) | 0x80);
    bytes.push(...chunk);
  }
  return tlv(0x06, Buffer.from(bytes));
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; always UTC, seconds. */
export function time(date: Date): Buffer {
  const iso = date.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
  const year = date.getUTCFullYear();
  return year < 2050
    ? tlv(0x17, Buffer.from(digits.slice(2), 'ascii'))
    : tlv(0x18, Buffer.from(digits, 'ascii'));
}

export interface Tlv {
  readonly tag: number;
  readonly start: number;
  readonly contentStart: number;
  readonly end: number;
}

/** Reads one DER TLV header at `start` (definite lengths up to 4 bytes, single-byte tags). */
export function readTlv(der: Uint8Array, start: number): Tlv {
  const tag = der[start];
  const first = der[start + 1];
  if (tag === undefined || first === undefined) throw new Error('truncated DER');
  let length = first;
  let contentStart = start + 2;
  if (first & 0x80) {
    const count = first & 0x7f;
    if (count === 0 || count > 4) throw new Error('unsupported DER length');
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + (der[contentStart + i] ?? 0);
    contentStart += count;
  }
  const end = contentStart + length;
  if (end > der.length) throw new Error('truncated DER');
  return { tag, start, contentStart, end };
}

/** The exact DER bytes of a certificate's subject Name (issuer of the leaves it signs). */
export function certificateSubject(certDer: Uint8Array): Buffer {
  const cert = readTlv(certDer, 0);
  const tbs = readTlv(certDer, cert.contentStart);
  let field = readTlv(certDer, tbs.contentStart);
  if (field.tag === 0xa0) field = readTlv(certDer, field.end); // [0] version, then serialNumber
  const signature = readTlv(certDer, field.end);
  const issuer = readTlv(certDer, signature.end);
  const validity = readTlv(certDer, issuer.end);
  const subject = readTlv(certDer, validity.end);
  if (subject.tag !== 0x30) throw new Error('unexpected certificate structure');
  return Buffer.from(certDer.subarray(subject.start, subject.end));
}

/** WebCrypto's ECDSA signature (r || s, fixed width) as the DER Ecdsa-Sig-Value X.509 wants. */
export function ecdsaSignatureToDer(raw: Buffer): Buffer {
  const half = raw.length / 2;
  return sequence(unsignedInteger(raw.subarray(0, half)), unsignedInteger(raw.subarray(half)));
}
