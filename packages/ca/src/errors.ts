/**
 * Stable error codes. A code, once published, keeps its meaning and is never reused:
 * callers (the daemon, operators' scripts) branch on `err.code`, never on the message.
 */
export type CaErrorCode =
  /** The CA certificate's notAfter is in the past. */
  | 'CA_EXPIRED'
  /** The CA certificate's notBefore is in the future (clock skew or a pre-dated certificate). */
  | 'CA_NOT_YET_VALID'
  /** basicConstraints does not say CA:TRUE, or keyUsage lacks keyCertSign. */
  | 'CA_NOT_A_CA'
  /** The private key is not the one the certificate was issued for. */
  | 'CA_KEY_MISMATCH'
  /** The key file can be read or written by users other than its owner (and group, read only). */
  | 'CA_KEY_PERMISSIONS'
  /** The key is encrypted and no passphrase, or a wrong one, was given. */
  | 'CA_KEY_PASSPHRASE'
  /** The key is of a type drp cannot sign with (RSA-PSS, Ed25519, unusual curves). */
  | 'CA_UNSUPPORTED_KEY'
  /** An RSA key shorter than 2048 bits. */
  | 'CA_WEAK_KEY'
  /** The certificate is not a parseable PEM/DER X.509 certificate. */
  | 'CA_INVALID_CERT'
  /** The key is not a parseable PEM private key. */
  | 'CA_INVALID_KEY'
  /** Only one of the certificate and key exists; drp never overwrites half a CA. */
  | 'CA_INCOMPLETE'
  /** Bring-your-own files that do not exist (and creation was not asked for). */
  | 'CA_NOT_FOUND'
  /** Contradictory or out-of-range options. */
  | 'CA_INVALID_OPTIONS'
  /** A name given to issue() is not a DNS name or IP literal. */
  | 'CA_INVALID_NAME'
  /** Reading or writing the CA files failed (see `cause`). */
  | 'CA_IO';

export class CaError extends Error {
  override readonly name = 'CaError';
  readonly code: CaErrorCode;

  constructor(code: CaErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

export function isCaError(err: unknown, code?: CaErrorCode): err is CaError {
  return err instanceof CaError && (code === undefined || err.code === code);
}
