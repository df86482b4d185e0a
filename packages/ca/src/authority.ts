import type { KeyObject } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { availableParallelism } from 'node:os';
import { dirname } from 'node:path';
import type { SecureContext } from 'node:tls';
import createDebug from 'debug';
import { type ValidatedCa, validateCa } from './certificate.js';
import { CaError, isCaError } from './errors.js';
import { checkKeyFileMode, ensurePrivateDir } from './files.js';
import { createCaCertificate, defaultCommonName } from './generate.js';
import type { IssuedCertificate, IssuedEvent } from './issued.js';
import { LeafIssuer } from './issuer.js';
import { type LeafKeyType, parsePrivateKey, type SigningKey, toSigningKey } from './keys.js';
import { type CaOptions, type ResolvedCaOptions, type RotateOptions, resolveOptions } from './options.js';
import {
  backupPair,
  backupStamp,
  type CaPaths,
  completePendingInstall,
  hasPendingInstall,
  installPair,
  readPair,
  withDirLock,
} from './store.js';

const debug = createDebug('drp:ca');
const DAY = 86_400_000;
const EXPIRY_CHECK_INTERVAL_MS = 6 * 60 * 60 * 1000;
/**
 * Leaves made at once. Each issuance is a chain of short WebCrypto jobs on the libuv pool,
 * which fs and dns.lookup share, and which competes with the event loop for CPUs: on a
 * 2-CPU machine one at a time keeps a core for the event loop (measured: RSA-4096 CA bursts
 * lag 65 ms with two, see docs/ca.md); with more CPUs two overlap JS with a pool job.
 */
const ISSUE_CONCURRENCY = availableParallelism() > 2 ? 2 : 1;

export interface CaWarning {
  readonly code: 'CA_EXPIRING';
  readonly message: string;
  readonly notAfter: Date;
  readonly daysLeft: number;
}

export interface CaEvents {
  warning: [CaWarning];
  issued: [IssuedEvent];
}

/** Where the CA lives on disk, when it does. */
export interface CaFiles extends CaPaths {
  /** Set by rotateCA(): where the previous certificate and key were kept. */
  readonly backup?: Partial<CaPaths>;
}

export interface CertificateAuthority extends EventEmitter<CaEvents> {
  /** The CA certificate, PEM; what /ca.crt serves and clients trust. */
  readonly certPem: string;
  readonly certDer: Buffer;
  /**
   * PEM sent after each leaf by secureContext(): empty for a root CA; for a bring-your-own
   * intermediate, the intermediate and the certificates that followed it in its file.
   */
  readonly chainPem: string;
  /** SHA-256 of the DER certificate, `AB:CD:...` (the form `openssl x509 -fingerprint -sha256` prints). */
  readonly fingerprint256: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** RFC 4514 form, e.g. `O=drp, OU=docker registry proxy, CN=drp CA Root host 2026.11.28 10:05`. */
  readonly subject: string;
  /** e.g. `ecdsa-p256`, `rsa-4096`: the CA key's type. */
  readonly keyType: string;
  readonly leafKeyType: LeafKeyType;
  /** 'created' on first start (or rotation), 'loaded' otherwise. */
  readonly origin: 'created' | 'loaded';
  /** Set when the CA came from (or was written to) files. */
  readonly files: CaFiles | undefined;
  /** A leaf for a DNS name or IP literal: cached, single-flight, renewed before expiry. */
  issue(name: string): Promise<IssuedCertificate>;
  /** A TLS context presenting the leaf for `name`, cached per name: made for an SNICallback. */
  secureContext(name: string): Promise<SecureContext>;
  /** Emits and returns a warning when the CA expires within `warnDays`; at most once a day. */
  checkExpiry(): CaWarning | undefined;
  /** Number of names with a cached leaf. */
  readonly cachedLeaves: number;
  /** Stops the periodic expiry check and drops cached leaves. */
  close(): void;
}

class Authority extends EventEmitter<CaEvents> implements CertificateAuthority {
  readonly certPem: string;
  readonly certDer: Buffer;
  readonly chainPem: string;
  readonly fingerprint256: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly keyType: string;
  readonly leafKeyType: LeafKeyType;
  readonly origin: 'created' | 'loaded';
  readonly files: CaFiles | undefined;
  readonly #ca: ValidatedCa;
  readonly #issuer: LeafIssuer;
  readonly #options: ResolvedCaOptions;
  #lastWarning = Number.NEGATIVE_INFINITY;
  #timer: NodeJS.Timeout | undefined;
  #startup: NodeJS.Immediate | undefined;

  constructor(
    ca: ValidatedCa,
    signingKey: SigningKey,
    options: ResolvedCaOptions,
    origin: 'created' | 'loaded',
    files: CaFiles | undefined,
  ) {
    super();
    this.certPem = ca.certPem;
    this.certDer = ca.certDer;
    this.chainPem = ca.chainPem;
    this.fingerprint256 = ca.fingerprint256;
    this.notBefore = ca.notBefore;
    this.notAfter = ca.notAfter;
    this.#ca = ca;
    this.keyType = signingKey.description;
    this.leafKeyType = options.leafKeyType;
    this.origin = origin;
    this.files = files;
    this.#options = options;
    this.#issuer = new LeafIssuer({
      ca,
      signingKey,
      leafKeyType: options.leafKeyType,
      leafValidityDays: options.leafValidityDays,
      maxCachedLeaves: options.maxCachedLeaves,
      concurrency: ISSUE_CONCURRENCY,
      now: options.now,
      onIssued: (event) => {
        // A throwing 'issued' listener (metrics, logs) must not fail the TLS handshake waiting on the leaf.
        try {
          this.emit('issued', event);
        } catch (err) {
          debug("an 'issued' listener threw: %O", err);
        }
      },
    });
    // Deferred so a listener attached right after `await loadOrCreateCA()` sees the first check.
    this.#startup = setImmediate(() => {
      this.#startup = undefined;
      this.checkExpiry();
    });
    this.#timer = setInterval(() => this.checkExpiry(), EXPIRY_CHECK_INTERVAL_MS);
    this.#timer.unref();
    this.#startup.unref();
    if (debug.enabled)
      debug('CA %s (%s, %s) valid until %s', origin, this.subject, this.keyType, this.notAfter.toISOString());
  }

  /** Computed on first read: the RFC 4514 form needs @peculiar/x509, which a start does not load. */
  get subject(): string {
    return this.#ca.subject;
  }

  get cachedLeaves(): number {
    return this.#issuer.size;
  }

  issue(name: string): Promise<IssuedCertificate> {
    return this.#issuer.issue(name);
  }

  secureContext(name: string): Promise<SecureContext> {
    return this.#issuer.secureContext(name);
  }

  checkExpiry(): CaWarning | undefined {
    const now = this.#options.now().getTime();
    const daysLeft = Math.floor((this.notAfter.getTime() - now) / DAY);
    if (daysLeft >= this.#options.warnDays) return undefined;
    const warning: CaWarning = {
      code: 'CA_EXPIRING',
      message:
        daysLeft < 0
          ? `The CA expired on ${this.notAfter.toISOString()}: rotate it and distribute the new ca.crt`
          : `The CA expires on ${this.notAfter.toISOString()} (${daysLeft} days): rotate it and distribute the new ca.crt`,
      notAfter: this.notAfter,
      daysLeft,
    };
    if (now - this.#lastWarning >= DAY) {
      this.#lastWarning = now;
      this.emit('warning', warning);
    }
    return warning;
  }

  close(): void {
    if (this.#timer) clearInterval(this.#timer);
    if (this.#startup) clearImmediate(this.#startup);
    this.#timer = undefined;
    this.#startup = undefined;
    this.#issuer.clear();
  }
}

/**
 * Loads the CA, or creates and persists it on first start. Sources, exactly one of:
 * `certPem` + `keyPem`; `certFile` + `keyFile` (bring your own; created there only with
 * `createIfMissing`); `dir` (ca.crt + ca.key, created on first start).
 */
export async function loadOrCreateCA(options: CaOptions): Promise<CertificateAuthority> {
  const o = resolveOptions(options);
  if (o.certPem !== undefined && o.keyPem !== undefined) {
    const key = parsePrivateKey(o.keyPem, o.passphrase, 'the CA key (keyPem)');
    return build(
      o.certPem,
      key,
      'the CA certificate (certPem)',
      'the CA key (keyPem)',
      o,
      'loaded',
      undefined,
    );
  }
  const paths = o.paths!;
  const load = async (): Promise<CertificateAuthority | undefined> => {
    const { certPem, keyPem } = await readPair(paths);
    if (certPem === undefined && keyPem === undefined) return undefined;
    if (certPem === undefined || keyPem === undefined) {
      const [have, missing] =
        certPem === undefined ? [paths.keyFile, paths.certFile] : [paths.certFile, paths.keyFile];
      throw new CaError(
        'CA_INCOMPLETE',
        `${have} exists but ${missing} does not; restore it, or remove ${have} to create a new CA`,
      );
    }
    await checkKeyFileMode(paths.keyFile);
    const key = parsePrivateKey(keyPem, o.passphrase, paths.keyFile);
    return build(certPem, key, paths.certFile, paths.keyFile, o, 'loaded', { ...paths });
  };
  const underLock = async (): Promise<CertificateAuthority> => {
    await prepareDirs(o, paths);
    return withDirLock(dirname(paths.keyFile), async () => {
      // Another process may have created the CA, or left an install to finish, meanwhile.
      await completePendingInstall(paths);
      const loaded = await load();
      if (loaded) return loaded;
      if (!o.createIfMissing) throw notFound(paths);
      return create(o, paths, undefined);
    });
  };

  // The common case, a complete CA and no install in progress, needs no lock (and so no
  // write access: bring-your-own files may be on a read-only mount).
  if (await hasPendingInstall(paths)) return underLock();
  try {
    const loaded = await load();
    if (loaded) return loaded;
  } catch (err) {
    // A rotation by another process may have replaced one file of the pair under our feet.
    const racing = isCaError(err, 'CA_KEY_MISMATCH') || isCaError(err, 'CA_INCOMPLETE');
    if (racing && (await hasPendingInstall(paths))) return underLock();
    throw err;
  }
  if (!o.createIfMissing) throw notFound(paths);
  return underLock();
}

function notFound(paths: CaPaths): CaError {
  return new CaError('CA_NOT_FOUND', `Neither ${paths.certFile} nor ${paths.keyFile} exists`);
}

/**
 * Replaces the CA in `dir` (or certFile/keyFile) with a new one. The previous pair is kept as
 * `ca.crt.<UTC stamp>.bak` and `ca.key.<UTC stamp>.bak` (0600); the previous CA need not be
 * valid (rotating an expired or broken CA is the point). Clients must be given the new ca.crt.
 */
export async function rotateCA(options: RotateOptions): Promise<CertificateAuthority> {
  const o = resolveOptions({ ...options, createIfMissing: true });
  const paths = o.paths;
  if (!paths) throw new CaError('CA_INVALID_OPTIONS', 'rotateCA needs a dir (or certFile and keyFile)');
  await prepareDirs(o, paths);
  return withDirLock(dirname(paths.keyFile), async () => {
    await completePendingInstall(paths);
    const backup = await backupPair(paths, backupStamp(o.now()));
    debug('rotating the CA in %s; previous kept as %o', dirname(paths.certFile), backup);
    return create(o, paths, backup);
  });
}

async function prepareDirs(o: ResolvedCaOptions, paths: CaPaths): Promise<void> {
  // `dir` is ours to keep private; bring-your-own locations are only created, never re-moded.
  await ensurePrivateDir(dirname(paths.keyFile), o.dir !== undefined);
  if (dirname(paths.certFile) !== dirname(paths.keyFile))
    await ensurePrivateDir(dirname(paths.certFile), false);
}

async function create(
  o: ResolvedCaOptions,
  paths: CaPaths,
  backup: Partial<CaPaths> | undefined,
): Promise<CertificateAuthority> {
  const started = performance.now();
  const now = o.now();
  const made = await createCaCertificate({
    keyType: o.caKeyType,
    commonName: o.commonName ?? defaultCommonName(now),
    validityDays: o.validityDays,
    now,
  });
  // With a passphrase the key is stored encrypted (PKCS#8, AES-256-CBC).
  const keyPem =
    o.passphrase !== undefined
      ? (made.key.export({
          format: 'pem',
          type: 'pkcs8',
          cipher: 'aes-256-cbc',
          passphrase: o.passphrase,
        }) as string)
      : made.keyPem;
  await installPair(paths, made.certPem, keyPem);
  debug('created a %s CA in %d ms: %s', o.caKeyType, Math.round(performance.now() - started), paths.certFile);
  const files: CaFiles = backup ? { ...paths, backup } : { ...paths };
  return build(made.certPem, made.key, paths.certFile, paths.keyFile, o, 'created', files);
}

async function build(
  certText: string,
  key: KeyObject,
  certSource: string,
  keySource: string,
  o: ResolvedCaOptions,
  origin: 'created' | 'loaded',
  files: CaFiles | undefined,
): Promise<CertificateAuthority> {
  const ca = validateCa(certText, key, o.now(), certSource);
  const signingKey = await toSigningKey(key, keySource);
  return new Authority(ca, signingKey, o, origin, files);
}
