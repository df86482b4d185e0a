/**
 * Runs at most `limit` tasks at a time, first come first served, each starting on a fresh
 * event-loop turn. Leaf issuance is mostly synchronous ASN.1 work between short WebCrypto
 * jobs: without a gate, 100 concurrent issuances would run their JS back to back in one
 * turn (hundreds of milliseconds of lag); through it, other sockets get a turn between leaves.
 */
export class Gate {
  readonly #limit: number;
  #active = 0;
  readonly #waiting: Array<() => void> = [];

  constructor(limit: number) {
    this.#limit = limit;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#active < this.#limit) this.#active++;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve)); // slot handed over
    try {
      await new Promise<void>((resolve) => setImmediate(resolve));
      return await task();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#active--;
    }
  }
}
