import { type KeyObject, X509Certificate as NodeX509Certificate } from 'node:crypto';
import { readCertFields } from './cert-fields.js';
import { CaError } from './errors.js';
import { loadX509 } from './x509.js';

/** A CA certificate that passed every check in validateCa(). */
export interface ValidatedCa {
  /** Its subjectKeyIdentifier (hex), when it has one. */
  readonly subjectKeyId: string | undefined;
  /** Its DER SubjectPublicKeyInfo. */
  readonly spki: Buffer;
  readonly certPem: string;
  readonly certDer: Buffer;
  /**
   * What a TLS server sends after each leaf: nothing for a root CA; for an intermediate, the
   * intermediate itself and whatever followed it in the file (its chain up to the root).
   */
  readonly chainPem: string;
  readonly fingerprint256: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** RFC 4514 form; computed on first read (it loads @peculiar/x509, see x509.ts). */
  readonly subject: string;
}

/** The RFC 4514 subject as @peculiar/x509 writes it (what `subject` has always shown). */
export function subjectOf(pem: string): string {
  const x509 = loadX509();
  return new x509.X509Certificate(pem).subject;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

export function splitPemCertificates(text: string): string[] {
  return (text.match(PEM_CERT) ?? []).map((block) => `${block.trim()}\n`);
}

/**
 * Checks that `certText` (PEM, first certificate = the signing CA) can sign leaves with `key`
 * at time `now`. Each failure has its own code so an operator sees exactly what is wrong.
 */
export function validateCa(certText: string, key: KeyObject, now: Date, source: string): ValidatedCa {
  const blocks = splitPemCertificates(certText);
  const first = blocks[0];
  if (!first) throw new CaError('CA_INVALID_CERT', `${source} contains no PEM certificate`);
  let nodeCert: NodeX509Certificate;
  let cert: ReturnType<typeof readCertFields>;
  try {
    nodeCert = new NodeX509Certificate(first);
    cert = readCertFields(nodeCert.raw);
  } catch (err) {
    throw new CaError('CA_INVALID_CERT', `${source} is not a readable X.509 certificate`, { cause: err });
  }
  if (!cert.basicConstraintsCa) {
    throw new CaError(
      'CA_NOT_A_CA',
      `${source} is not a CA certificate (basicConstraints CA:TRUE is missing): it cannot sign other certificates`,
    );
  }
  if (cert.keyCertSign === false) {
    throw new CaError('CA_NOT_A_CA', `${source} has a keyUsage extension without keyCertSign`);
  }
  if (!nodeCert.ca) {
    // OpenSSL's own CA check (X509_check_ca) disagrees for a reason of its own.
    throw new CaError('CA_NOT_A_CA', `${source} is not accepted as a CA certificate by OpenSSL`);
  }
  if (!nodeCert.checkPrivateKey(key)) {
    throw new CaError(
      'CA_KEY_MISMATCH',
      `The CA key does not belong to the certificate ${source} (subject ${subjectOf(first)})`,
    );
  }
  if (cert.notAfter.getTime() <= now.getTime()) {
    throw new CaError(
      'CA_EXPIRED',
      `The CA certificate ${source} expired on ${cert.notAfter.toISOString()}; rotate it (rotateCA / drp-server ca rotate)`,
    );
  }
  if (cert.notBefore.getTime() > now.getTime()) {
    throw new CaError(
      'CA_NOT_YET_VALID',
      `The CA certificate ${source} is not valid before ${cert.notBefore.toISOString()}; check the system clock`,
    );
  }
  let subject: string | undefined;
  return {
    subjectKeyId: cert.subjectKeyId,
    spki: cert.spki,
    certPem: first,
    certDer: Buffer.from(nodeCert.raw),
    chainPem: nodeCert.issuer === nodeCert.subject ? '' : blocks.join(''),
    fingerprint256: nodeCert.fingerprint256,
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    get subject() {
      subject ??= subjectOf(first);
      return subject;
    },
  };
}
