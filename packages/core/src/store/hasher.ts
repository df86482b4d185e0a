/**
 * Digest verification off the event loop. A fill hashes every byte it receives; on the main
 * thread SHA-256 competes with TLS for the one core the event loop has (a quarter of a cold
 * fill's CPU). `HashPool` runs the hashing in one worker thread per cache: bytes are batched
 * (about 1 MiB) and handed over without a copy (the batch's memory is transferred), and the
 * digest comes back when the fill ends. If a worker cannot be started, hashing stays inline.
 */
import { createHash, type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import createDebug from 'debug';

const debug = createDebug('drp:hash');

const BATCH_BYTES = 1024 * 1024;

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const jobs = new Map();
parentPort.on('message', (m) => {
  if (m.op === 'start') jobs.set(m.id, createHash(m.algorithm));
  else if (m.op === 'data') { const h = jobs.get(m.id); if (h) h.update(new Uint8Array(m.data)); }
  else if (m.op === 'end') {
    const h = jobs.get(m.id);
    jobs.delete(m.id);
    parentPort.postMessage({ id: m.id, hex: h ? h.digest('hex') : '' });
  } else if (m.op === 'abort') jobs.delete(m.id);
});
`;

/** An incremental hash whose digest is computed somewhere, eventually. */
export interface HashJob {
  update(chunk: Buffer): void;
  /** Resolves with the hex digest of every byte passed to `update`. */
  digest(): Promise<string>;
  abort(): void;
}

class InlineJob implements HashJob {
  readonly #hash: Hash;
  constructor(algorithm: string) {
    this.#hash = createHash(algorithm);
  }
  update(chunk: Buffer): void {
    this.#hash.update(chunk);
  }
  async digest(): Promise<string> {
    return this.#hash.digest('hex');
  }
  abort(): void {}
}

export class HashPool {
  #worker: Worker | undefined;
  #failed = false;
  #nextId = 1;
  readonly #waiting = new Map<number, (hex: string) => void>();

  /** A new job for `algorithm` (`sha256`, `sha512`). */
  job(algorithm: string): HashJob {
    const worker = this.#ensure();
    if (!worker) return new InlineJob(algorithm);
    const id = this.#nextId++;
    worker.postMessage({ op: 'start', id, algorithm });
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let done = false;
    const flush = () => {
      if (pendingBytes === 0) return;
      // One fresh ArrayBuffer per batch, transferred: no second copy, nothing shared.
      const batch = new Uint8Array(new ArrayBuffer(pendingBytes));
      let offset = 0;
      for (const chunk of pending) {
        batch.set(chunk, offset);
        offset += chunk.length;
      }
      pending = [];
      pendingBytes = 0;
      worker.postMessage({ op: 'data', id, data: batch.buffer }, [batch.buffer]);
    };
    return {
      update: (chunk) => {
        if (done) return;
        pending.push(chunk);
        pendingBytes += chunk.length;
        if (pendingBytes >= BATCH_BYTES) flush();
      },
      digest: () => {
        flush();
        done = true;
        return new Promise<string>((resolve) => {
          // A worker that died (or a closed pool) answers nothing: an empty digest never matches.
          if (this.#worker !== worker) {
            resolve('');
            return;
          }
          this.#waiting.set(id, resolve);
          worker.postMessage({ op: 'end', id });
        });
      },
      abort: () => {
        if (done) return;
        done = true;
        pending = [];
        worker.postMessage({ op: 'abort', id });
      },
    };
  }

  close(): void {
    const worker = this.#worker;
    this.#worker = undefined;
    this.#failed = true;
    // Jobs still waiting get an empty digest: it never matches, so nothing is stored.
    for (const resolve of this.#waiting.values()) resolve('');
    this.#waiting.clear();
    if (worker) void worker.terminate();
  }

  #ensure(): Worker | undefined {
    if (this.#worker || this.#failed) return this.#worker;
    try {
      const worker = new Worker(WORKER_SOURCE, { eval: true });
      worker.unref();
      worker.on('message', (m: { id: number; hex: string }) => {
        const resolve = this.#waiting.get(m.id);
        this.#waiting.delete(m.id);
        resolve?.(m.hex);
      });
      worker.on('error', (error) => {
        debug('hash worker failed: %s', error.message);
        this.#worker = undefined;
        this.#failed = true;
        for (const resolve of this.#waiting.values()) resolve('');
        this.#waiting.clear();
      });
      this.#worker = worker;
      return worker;
    } catch (error) {
      debug('cannot start a hash worker (%s): hashing inline', (error as Error).message);
      this.#failed = true;
      return undefined;
    }
  }
}
