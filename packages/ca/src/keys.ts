import { createHash, createPrivateKey, type KeyObject, webcrypto } from 'node:crypto';
import { NULL, oid, readTlv, sequence } from './der.js';
import { CaError } from './errors.js';

// The WebCrypto types live under node:crypto's namespace (the DOM lib is not loaded).
type CryptoKey = webcrypto.CryptoKey;
type Algorithm = webcrypto.Algorithm;
type EcdsaParams = webcrypto.EcdsaParams;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
type RsaHashedKeyGenParams = webcrypto.RsaHashedKeyGenParams;

/** WebCrypto from node:crypto, passed explicitly so an embedding app's x509 provider is left alone. */
export const crypto: webcrypto.Crypto = webcrypto;

export type LeafKeyType = 'ecdsa-p256' | 'rsa-2048';
export type CaKeyType = 'ecdsa-p256' | 'ecdsa-p384' | 'rsa-2048' | 'rsa-3072' | 'rsa-4096';
export const CA_KEY_TYPES: readonly CaKeyType[] = [
  'ecdsa-p256',
  'ecdsa-p384',
  'rsa-2048',
  'rsa-3072',
  'rsa-4096',
];
export const LEAF_KEY_TYPES: readonly LeafKeyType[] = ['ecdsa-p256', 'rsa-2048'];

/** A key usable for signing with WebCrypto, plus what X.509 needs to name its algorithm. */
export interface SigningKey {
  readonly privateKey: CryptoKey;
  readonly signingAlgorithm: Algorithm | EcdsaParams;
  /** DER AlgorithmIdentifier of the signatures this key makes (ecdsa-with-SHA256, sha256WithRSAEncryption...). */
  readonly algorithmIdentifier: Buffer;
  /** 'ecdsa' signatures come from WebCrypto as r||s and are DER-encoded for X.509. */
  readonly family: 'ecdsa' | 'rsa';
  /** e.g. 'ecdsa-p256', 'rsa-4096': for logs and docs, not for logic. */
  readonly description: string;
}

export interface GeneratedKeyPair {
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
  readonly signingAlgorithm: Algorithm | EcdsaParams;
}

const CURVE_HASH: Record<string, string> = { 'P-256': 'SHA-256', 'P-384': 'SHA-384', 'P-521': 'SHA-512' };
// RFC 5758 §3.2 (ECDSA: parameters absent) and RFC 4055 (RSA: NULL parameters).
const ECDSA_WITH: Record<string, Buffer> = {
  'SHA-256': sequence(oid('1.2.840.10045.4.3.2')),
  'SHA-384': sequence(oid('1.2.840.10045.4.3.3')),
  'SHA-512': sequence(oid('1.2.840.10045.4.3.4')),
};
const SHA256_WITH_RSA = sequence(oid('1.2.840.113549.1.1.11'), NULL);
const OPENSSL_CURVES: Record<string, string> = {
  prime256v1: 'P-256',
  secp384r1: 'P-384',
  secp521r1: 'P-521',
};

/** Generates a key pair off the main thread (WebCrypto runs key generation in libuv's pool). */
export async function generateKeyPair(type: CaKeyType | LeafKeyType): Promise<GeneratedKeyPair> {
  if (type.startsWith('ecdsa-')) {
    const namedCurve = type === 'ecdsa-p384' ? 'P-384' : 'P-256';
    const pair = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve }, true, [
      'sign',
      'verify',
    ])) as CryptoKeyPair;
    return { ...pair, signingAlgorithm: { name: 'ECDSA', hash: CURVE_HASH[namedCurve] } as EcdsaParams };
  }
  const modulusLength = Number(type.slice('rsa-'.length));
  const alg: RsaHashedKeyGenParams = {
    name: 'RSASSA-PKCS1-v1_5',
    modulusLength,
    publicExponent: new Uint8Array([1, 0, 1]),
    hash: 'SHA-256',
  };
  const pair = (await crypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
  return { ...pair, signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } };
}

/**
 * PKCS#8 PEM through WebCrypto: OpenSSL 3's key encoders cost ~0.3 ms of CPU per call, which
 * WebCrypto spends on the libuv pool instead of the event loop (KeyObject.export would not).
 */
export async function exportPrivateKeyPem(key: CryptoKey): Promise<string> {
  return toPem(Buffer.from(await crypto.subtle.exportKey('pkcs8', key)), 'PRIVATE KEY');
}

export async function exportSpki(key: CryptoKey): Promise<Buffer> {
  return Buffer.from(await crypto.subtle.exportKey('spki', key));
}

export function toPem(der: Buffer, label: string): string {
  const base64 = der.toString('base64');
  let body = '';
  for (let i = 0; i < base64.length; i += 64) body += `${base64.slice(i, i + 64)}\n`;
  return `-----BEGIN ${label}-----\n${body}-----END ${label}-----\n`;
}

/**
 * RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING's bits, read from
 * DER SubjectPublicKeyInfo ::= SEQUENCE { AlgorithmIdentifier, BIT STRING }. Computed
 * synchronously because it is a few microseconds of hashing.
 */
export function keyIdentifier(spki: Buffer): string {
  const outer = readTlv(spki, 0);
  const algorithm = readTlv(spki, outer.contentStart);
  const bits = readTlv(spki, algorithm.end);
  if (spki[outer.start] !== 0x30 || spki[bits.start] !== 0x03)
    throw new Error('not a DER SubjectPublicKeyInfo');
  return createHash('sha1')
    .update(spki.subarray(bits.contentStart + 1, bits.end))
    .digest('hex');
}

/** The original (rpardini/docker-registry-proxy) encrypts its CA key with this fixed passphrase. */
export const ORIGINAL_PASSPHRASE = 'foobar';

/**
 * Parses a PEM private key: PKCS#8, PKCS#1/SEC1, encrypted PKCS#8 and traditional encrypted
 * ("Proc-Type: 4,ENCRYPTED"). Without a passphrase, an encrypted key is tried with the
 * original's fixed passphrase so a /ca volume from the original loads unchanged.
 */
export function parsePrivateKey(pem: string, passphrase: string | undefined, source: string): KeyObject {
  const encrypted = /-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type:\s*4,\s*ENCRYPTED/.test(pem);
  if (!encrypted) {
    try {
      return createPrivateKey({ key: pem, format: 'pem' });
    } catch (err) {
      throw new CaError('CA_INVALID_KEY', `${source} is not a readable PEM private key`, { cause: err });
    }
  }
  const candidates = passphrase !== undefined ? [passphrase] : [ORIGINAL_PASSPHRASE];
  for (const candidate of candidates) {
    try {
      return createPrivateKey({ key: pem, format: 'pem', passphrase: candidate });
    } catch {
      // try the next candidate; the error below names the situation precisely
    }
  }
  throw new CaError(
    'CA_KEY_PASSPHRASE',
    passphrase === undefined
      ? `${source} is encrypted: give its passphrase (option passphrase / CA_KEY_PASSPHRASE)`
      : `${source} is encrypted and the passphrase given does not decrypt it`,
  );
}

/** Turns a Node KeyObject into a WebCrypto signing key; refuses types and sizes drp will not sign with. */
export async function toSigningKey(key: KeyObject, source: string): Promise<SigningKey> {
  const der = key.export({ format: 'der', type: 'pkcs8' });
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'rsa') {
    const bits = details.modulusLength ?? 0;
    if (bits < 2048) {
      throw new CaError('CA_WEAK_KEY', `${source} is an RSA key of ${bits} bits; at least 2048 are required`);
    }
    const privateKey = await crypto.subtle.importKey(
      'pkcs8',
      der,
      { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
      false,
      ['sign'],
    );
    return {
      privateKey,
      signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5' },
      algorithmIdentifier: SHA256_WITH_RSA,
      family: 'rsa',
      description: `rsa-${bits}`,
    };
  }
  if (key.asymmetricKeyType === 'ec') {
    const namedCurve = OPENSSL_CURVES[details.namedCurve ?? ''];
    if (namedCurve) {
      const privateKey = await crypto.subtle.importKey('pkcs8', der, { name: 'ECDSA', namedCurve }, false, [
        'sign',
      ]);
      const hash = CURVE_HASH[namedCurve] ?? 'SHA-256';
      return {
        privateKey,
        signingAlgorithm: { name: 'ECDSA', hash } as EcdsaParams,
        algorithmIdentifier: ECDSA_WITH[hash]!,
        family: 'ecdsa',
        description: `ecdsa-${namedCurve.toLowerCase().replace('-', '')}`,
      };
    }
  }
  const kind = `${key.asymmetricKeyType ?? 'unknown'}${details.namedCurve ? ` (${details.namedCurve})` : ''}`;
  throw new CaError(
    'CA_UNSUPPORTED_KEY',
    `${source} is a ${kind} key; drp signs with RSA (PKCS#1 v1.5) or ECDSA P-256/P-384/P-521 keys`,
  );
}
