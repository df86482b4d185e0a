/**
 * Upstream bytes waiting for the store: queued while a write runs, then written as one batch
 * (one writev), so a slow disk means fewer, bigger writes rather than a growing backlog of them.
 */
export interface WriteQueueSink {
  /** Writes one batch; rejects when the store refused it. */
  write(batch: readonly Buffer[]): Promise<void>;
  /** Whether to go on writing (the fill may have failed or turned into a pass-through). */
  open(): boolean;
  /** A batch is written. */
  written(batch: readonly Buffer[]): void;
  /** A batch was refused; queued bytes stay queued for the sink to take. */
  refused(error: unknown, batch: Buffer[]): Promise<void>;
}

export class WriteQueue {
  readonly #sink: WriteQueueSink;
  #queue: Buffer[] = [];
  #bytes = 0;
  #running: Promise<void> | undefined;

  constructor(sink: WriteQueueSink) {
    this.#sink = sink;
  }

  /** Bytes waiting. */
  get bytes(): number {
    return this.#bytes;
  }

  push(chunk: Buffer): void {
    this.#queue.push(chunk);
    this.#bytes += chunk.length;
    this.#running ??= this.#run().finally(() => {
      this.#running = undefined;
    });
  }

  /** Resolves when nothing is queued or being written. */
  async drain(): Promise<void> {
    while (this.#running) await this.#running;
  }

  /** Everything still queued, now the caller's. */
  take(): Buffer[] {
    const queued = this.#queue;
    this.#queue = [];
    this.#bytes = 0;
    return queued;
  }

  async #run(): Promise<void> {
    while (this.#queue.length > 0 && this.#sink.open()) {
      const batch = this.take();
      try {
        await this.#sink.write(batch);
      } catch (error) {
        await this.#sink.refused(error, batch);
        return;
      }
      if (this.#sink.open()) this.#sink.written(batch);
    }
  }
}
