// @drp/ca: the certificate authority of a TLS-intercepting proxy (see docs/ca.md).
export {
  type CaEvents,
  type CaFiles,
  type CaWarning,
  type CertificateAuthority,
  loadOrCreateCA,
  rotateCA,
} from './authority.js';
export { CaError, type CaErrorCode, isCaError } from './errors.js';
export { type IssuedCertificate, type IssuedEvent, MAX_LEAF_DAYS } from './issued.js';
export {
  CA_KEY_TYPES,
  type CaKeyType,
  LEAF_KEY_TYPES,
  type LeafKeyType,
  ORIGINAL_PASSPHRASE,
} from './keys.js';
export { type LeafName, parseLeafName } from './names.js';
export type { CaOptions, RotateOptions } from './options.js';
export { CERT_FILE_NAME, KEY_FILE_NAME } from './store.js';
