import { createPrivateKey, type KeyObject, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { type CaKeyType, crypto, exportPrivateKeyPem, generateKeyPair } from './keys.js';
import { loadX509 } from './x509.js';

const DAY = 86_400_000;
/** Backdating tolerates clients whose clocks run a little behind the proxy's. */
export const BACKDATE_MS = 60 * 60 * 1000;

export interface NewCa {
  readonly certPem: string;
  readonly keyPem: string;
  readonly key: KeyObject;
}

/**
 * The original names its root "DockerMirrorBox CA Root <hostname -f> <YYYY.MM.DD HH:MM>",
 * cut to 64 characters (the X.520 limit); drp keeps the shape so operators can tell CAs apart.
 */
export function defaultCommonName(now: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  const date = `${now.getUTCFullYear()}.${p(now.getUTCMonth() + 1)}.${p(now.getUTCDate())} ${p(now.getUTCHours())}:${p(now.getUTCMinutes())}`;
  return `drp CA Root ${hostname()} ${date}`.slice(0, 64);
}

/** 16 random bytes, top bit clear and first byte non-zero: a positive, minimal 128-bit INTEGER. */
export function randomSerialBytes(): Buffer {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f || 0x01;
  return bytes;
}

export function randomSerial(): string {
  return randomSerialBytes().toString('hex');
}

export async function createCaCertificate(options: {
  keyType: CaKeyType;
  commonName: string;
  validityDays: number;
  now: Date;
}): Promise<NewCa> {
  const x509 = loadX509();
  const keys = await generateKeyPair(options.keyType);
  const notBefore = new Date(options.now.getTime() - BACKDATE_MS);
  const notAfter = new Date(options.now.getTime() + options.validityDays * DAY);
  const name: import('@peculiar/x509').JsonName = [
    { O: ['drp'] },
    { OU: ['docker registry proxy'] },
    { CN: [options.commonName] },
  ];
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomSerial(),
      name,
      notBefore,
      notAfter,
      keys,
      signingAlgorithm: keys.signingAlgorithm,
      extensions: [
        // pathLen 0: this CA signs leaves only, so a leaked leaf key can never act as a CA.
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
          true,
        ),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  const keyPem = await exportPrivateKeyPem(keys.privateKey);
  return { certPem: `${cert.toString('pem').trim()}\n`, keyPem, key: createPrivateKey(keyPem) };
}
