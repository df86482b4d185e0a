import { createSecureContext, type SecureContext } from 'node:tls';
import createDebug from 'debug';
import type { ValidatedCa } from './certificate.js';
import { certificateSubject } from './der.js';
import { CaError } from './errors.js';
import { Gate } from './gate.js';
import { BACKDATE_MS, randomSerialBytes } from './generate.js';
import type { IssuedCertificate, IssuedEvent } from './issued.js';
import {
  exportPrivateKeyPem,
  exportSpki,
  generateKeyPair,
  keyIdentifier,
  type LeafKeyType,
  type SigningKey,
  toPem,
} from './keys.js';
import { buildLeaf, type LeafTemplate } from './leaf.js';
import { type LeafName, parseLeafName } from './names.js';

const debug = createDebug('drp:ca');
const DAY = 86_400_000;
/** Below this remaining lifetime a cached leaf is not served while a new one is being made. */
const HARD_MARGIN_MS = 5 * 60 * 1000;

export interface IssuerOptions {
  readonly ca: ValidatedCa;
  readonly signingKey: SigningKey;
  readonly leafKeyType: LeafKeyType;
  readonly leafValidityDays: number;
  readonly maxCachedLeaves: number;
  /** Issuances in progress at once (the rest queue); see Gate. */
  readonly concurrency: number;
  readonly now: () => Date;
  readonly onIssued: (event: IssuedEvent) => void;
}

interface Entry {
  current?: IssuedCertificate;
  pending?: Promise<IssuedCertificate>;
  context?: { leaf: IssuedCertificate; value: SecureContext };
}

/**
 * Leaf certificates per name: cached (LRU-bounded), single-flight (concurrent requests for a
 * name share one issuance) and renewed in the background once two thirds of the lifetime is
 * spent, so a TLS handshake only ever waits on the very first issuance for a name.
 */
export class LeafIssuer {
  readonly #o: IssuerOptions;
  readonly #entries = new Map<string, Entry>();
  readonly #gate: Gate;
  /** What every leaf shares, computed once. */
  readonly #template: LeafTemplate;
  #sharedKey: { made: number; key: Promise<LeafKey> } | undefined;

  constructor(options: IssuerOptions) {
    this.#o = options;
    this.#gate = new Gate(options.concurrency);
    // The CA's own subjectKeyIdentifier when it has one (chain builders match on it), else derived.
    const caKeyId = options.ca.subjectKeyId ?? keyIdentifier(options.ca.spki);
    this.#template = {
      issuer: certificateSubject(options.ca.certDer),
      authorityKeyId: Buffer.from(caKeyId, 'hex'),
      signingKey: options.signingKey,
      rsaLeaf: options.leafKeyType === 'rsa-2048',
    };
  }

  get size(): number {
    return this.#entries.size;
  }

  async issue(input: string): Promise<IssuedCertificate> {
    const name = parseLeafName(input);
    const now = this.#o.now().getTime();
    let entry = this.#entries.get(name.name);
    if (entry) {
      // Map order is insertion order: re-inserting makes this the most recently used.
      this.#entries.delete(name.name);
      this.#entries.set(name.name, entry);
    } else {
      entry = {};
      this.#entries.set(name.name, entry);
      this.#evict();
    }
    const current = entry.current;
    if (current && now < current.renewAt.getTime()) return current;
    if (current && now < current.notAfter.getTime() - HARD_MARGIN_MS) {
      // Still valid: serve it and renew in the background.
      this.#start(name, entry).catch((err: unknown) =>
        debug('background renewal of %s failed: %O', name.name, err),
      );
      return current;
    }
    return this.#start(name, entry);
  }

  async secureContext(input: string): Promise<SecureContext> {
    const leaf = await this.issue(input);
    const entry = this.#entries.get(leaf.name);
    if (entry?.context?.leaf === leaf) return entry.context.value;
    const chain = this.#o.ca.chainPem ? `${leaf.certPem}${this.#o.ca.chainPem}` : leaf.certPem;
    const value = createSecureContext({ cert: chain, key: leaf.keyPem });
    if (entry && entry.current === leaf) entry.context = { leaf, value };
    return value;
  }

  clear(): void {
    this.#entries.clear();
  }

  #start(name: LeafName, entry: Entry): Promise<IssuedCertificate> {
    if (entry.pending) return entry.pending;
    const renewal = entry.current !== undefined;
    const started = performance.now();
    const pending = this.#gate
      .run(() => this.#create(name))
      .then(
        (leaf) => {
          entry.current = leaf;
          entry.pending = undefined;
          this.#o.onIssued({
            name: leaf.name,
            notAfter: leaf.notAfter,
            serialNumber: leaf.serialNumber,
            durationMs: performance.now() - started,
            renewal,
          });
          return leaf;
        },
        (err: unknown) => {
          entry.pending = undefined;
          if (!entry.current && this.#entries.get(name.name) === entry) this.#entries.delete(name.name);
          throw err;
        },
      );
    entry.pending = pending;
    return pending;
  }

  #evict(): void {
    while (this.#entries.size > this.#o.maxCachedLeaves) {
      const oldest = this.#entries.keys().next();
      if (oldest.done) return;
      this.#entries.delete(oldest.value);
    }
  }

  async #create(name: LeafName): Promise<IssuedCertificate> {
    const { ca } = this.#o;
    const now = this.#o.now().getTime();
    const caNotAfter = ca.notAfter.getTime();
    if (caNotAfter <= now) {
      throw new CaError(
        'CA_EXPIRED',
        `The CA expired on ${ca.notAfter.toISOString()}; no certificate can be issued`,
      );
    }
    // Whole seconds, as the certificate encodes them, so notBefore/notAfter here are exact.
    const notBefore = new Date(wholeSeconds(Math.max(now - BACKDATE_MS, ca.notBefore.getTime())));
    const wanted = wholeSeconds(now + this.#o.leafValidityDays * DAY);
    // Never past the CA's own expiry: a chain is only as valid as its shortest link.
    const capped = wanted >= caNotAfter;
    const notAfter = new Date(capped ? caNotAfter : wanted);
    const lifetime = notAfter.getTime() - notBefore.getTime();
    const renewAt = new Date(capped ? caNotAfter - HARD_MARGIN_MS : notBefore.getTime() + (lifetime * 2) / 3);

    const key = await this.#leafKey();
    const serial = randomSerialBytes();
    const der = await buildLeaf(this.#template, {
      name,
      serial,
      notBefore,
      notAfter,
      spki: key.spki,
      subjectKeyId: key.subjectKeyId,
    });
    const serialNumber = serial.toString('hex');
    const leaf: IssuedCertificate = {
      name: name.name,
      certPem: toPem(der, 'CERTIFICATE'),
      keyPem: key.keyPem,
      notBefore,
      notAfter,
      serialNumber,
      keyType: this.#o.leafKeyType,
      renewAt,
    };
    debug('issued %s (%s) until %s', name.name, name.kind, notAfter.toISOString());
    return leaf;
  }

  /**
   * ECDSA: a fresh key per leaf (a fraction of a millisecond). RSA-2048: one key shared by
   * all leaves and replaced daily, because generating one costs 50 ms to seconds of a CPU
   * here; every leaf key lives in this process's memory either way, so sharing one does not
   * widen what a compromise of the process would expose.
   */
  #leafKey(): Promise<LeafKey> {
    if (this.#o.leafKeyType !== 'rsa-2048') return makeLeafKey(this.#o.leafKeyType);
    const now = this.#o.now().getTime();
    if (!this.#sharedKey || now - this.#sharedKey.made >= SHARED_KEY_MS) {
      const key = makeLeafKey(this.#o.leafKeyType);
      const shared = { made: now, key };
      this.#sharedKey = shared;
      key.catch(() => {
        if (this.#sharedKey === shared) this.#sharedKey = undefined; // retry on the next leaf
      });
    }
    return this.#sharedKey.key;
  }
}

const wholeSeconds = (ms: number) => Math.floor(ms / 1000) * 1000;

const SHARED_KEY_MS = DAY;

interface LeafKey {
  readonly keyPem: string;
  readonly spki: Buffer;
  readonly subjectKeyId: Buffer;
}

async function makeLeafKey(type: LeafKeyType): Promise<LeafKey> {
  const keys = await generateKeyPair(type);
  const spki = await exportSpki(keys.publicKey);
  return {
    keyPem: await exportPrivateKeyPem(keys.privateKey),
    spki,
    subjectKeyId: Buffer.from(keyIdentifier(spki), 'hex'),
  };
}
