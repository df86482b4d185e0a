import { CaError } from './errors.js';
import { MAX_LEAF_DAYS } from './issued.js';
import { CA_KEY_TYPES, type CaKeyType, LEAF_KEY_TYPES, type LeafKeyType } from './keys.js';
import { type CaPaths, pathsInDir } from './store.js';

export interface CaOptions {
  /** Persist/load `ca.crt` + `ca.key` here; created 0700 with the key 0600 on first start. */
  dir?: string;
  /** Bring your own CA (the original's CA_CRT_FILE / CA_KEY_FILE). */
  certFile?: string;
  keyFile?: string;
  /** Decrypts an encrypted key; when drp creates the CA, the key is stored encrypted with it. */
  passphrase?: string;
  /** From strings (no files are read or written). */
  certPem?: string;
  keyPem?: string;
  /**
   * Create the CA when neither file exists. Default: true for `dir`, false for
   * certFile/keyFile (a missing bring-your-own CA is then an error, not a silent new CA).
   */
  createIfMissing?: boolean;
  /** Leaf key type; default `ecdsa-p256`. `rsa-2048` for clients without ECDSA. */
  leafKeyType?: LeafKeyType;
  /** Key type of a CA drp creates; default `ecdsa-p256` (see docs/ca.md for why). */
  caKeyType?: CaKeyType;
  /** Subject CN of a CA drp creates; default `drp CA Root <hostname> <YYYY.MM.DD HH:MM>` like the original. */
  commonName?: string;
  /** Lifetime of a CA drp creates, in days; default 1300 like the original. */
  validityDays?: number;
  /** Leaf lifetime in days, 1 to 90; default 90 (never past the CA's expiry). */
  leafValidityDays?: number;
  /** Names kept in the leaf cache (least recently used dropped first); default 1000. */
  maxCachedLeaves?: number;
  /** Emit a 'warning' event when the CA expires within this many days; default 30. */
  warnDays?: number;
  /** Injectable clock for tests of expiry and renewal. */
  now?: () => Date;
}

export type RotateOptions = Omit<CaOptions, 'certPem' | 'keyPem' | 'createIfMissing'>;

export interface ResolvedCaOptions {
  readonly dir: string | undefined;
  readonly paths: CaPaths | undefined;
  readonly certPem: string | undefined;
  readonly keyPem: string | undefined;
  readonly passphrase: string | undefined;
  readonly createIfMissing: boolean;
  readonly leafKeyType: LeafKeyType;
  readonly caKeyType: CaKeyType;
  readonly commonName: string | undefined;
  readonly validityDays: number;
  readonly leafValidityDays: number;
  readonly maxCachedLeaves: number;
  readonly warnDays: number;
  readonly now: () => Date;
}

const DEFAULTS = {
  leafKeyType: 'ecdsa-p256',
  caKeyType: 'ecdsa-p256',
  validityDays: 1300, // the original's root lifetime
  leafValidityDays: MAX_LEAF_DAYS,
  maxCachedLeaves: 1000,
  warnDays: 30,
} as const;

/** Validates once, fills defaults, freezes. */
export function resolveOptions(options: CaOptions): ResolvedCaOptions {
  if (typeof options !== 'object' || options === null) bad('options must be an object');
  const { dir, certFile, keyFile, certPem, keyPem } = options;
  const fromPem = certPem !== undefined || keyPem !== undefined;
  const fromFiles = certFile !== undefined || keyFile !== undefined;
  if ([fromPem, fromFiles, dir !== undefined].filter(Boolean).length !== 1) {
    bad('give exactly one CA source: dir, certFile + keyFile, or certPem + keyPem');
  }
  if (fromPem && (typeof certPem !== 'string' || typeof keyPem !== 'string')) {
    bad('certPem and keyPem must be given together');
  }
  if (fromFiles && (!nonEmpty(certFile) || !nonEmpty(keyFile)))
    bad('certFile and keyFile must be given together');
  if (dir !== undefined && !nonEmpty(dir)) bad('dir must be a non-empty path');
  if (options.passphrase !== undefined && typeof options.passphrase !== 'string')
    bad('passphrase must be a string');

  const leafKeyType = options.leafKeyType ?? DEFAULTS.leafKeyType;
  if (!LEAF_KEY_TYPES.includes(leafKeyType)) bad(`leafKeyType must be one of ${LEAF_KEY_TYPES.join(', ')}`);
  const caKeyType = options.caKeyType ?? DEFAULTS.caKeyType;
  if (!CA_KEY_TYPES.includes(caKeyType)) bad(`caKeyType must be one of ${CA_KEY_TYPES.join(', ')}`);
  const commonName = options.commonName;
  if (commonName !== undefined && (!nonEmpty(commonName) || commonName.length > 64)) {
    bad('commonName must be 1 to 64 characters');
  }
  const validityDays = int('validityDays', options.validityDays ?? DEFAULTS.validityDays, 1, 36500);
  const leafValidityDays = int(
    'leafValidityDays',
    options.leafValidityDays ?? DEFAULTS.leafValidityDays,
    1,
    MAX_LEAF_DAYS,
  );
  const maxCachedLeaves = int('maxCachedLeaves', options.maxCachedLeaves ?? DEFAULTS.maxCachedLeaves, 1, 1e7);
  const warnDays = int('warnDays', options.warnDays ?? DEFAULTS.warnDays, 0, 36500);
  if (options.now !== undefined && typeof options.now !== 'function') bad('now must be a function');

  return Object.freeze({
    dir,
    paths:
      dir !== undefined
        ? pathsInDir(dir)
        : fromFiles
          ? { certFile: certFile!, keyFile: keyFile! }
          : undefined,
    certPem,
    keyPem,
    passphrase: options.passphrase,
    createIfMissing: options.createIfMissing ?? dir !== undefined,
    leafKeyType,
    caKeyType,
    commonName,
    validityDays,
    leafValidityDays,
    maxCachedLeaves,
    warnDays,
    now: options.now ?? (() => new Date()),
  });
}

function nonEmpty(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0;
}

function int(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max)
    bad(`${name} must be an integer from ${min} to ${max}`);
  return value;
}

function bad(message: string): never {
  throw new CaError('CA_INVALID_OPTIONS', message);
}
