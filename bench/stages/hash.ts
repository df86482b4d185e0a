// SHA-256 stages: 200 MB hashed on the main thread in 16 KiB updates (the size of a TLS record,
// what arrives per 'data' event) and in 1 MiB updates, and in a worker thread fed bounded,
// acknowledged batches: the main thread copies 16 KiB chunks into one of a fixed pool of batch
// buffers and transfers it to the worker, which hashes it and transfers it back as the
// acknowledgement; with every buffer out, the producer waits
// (memory is bounded and a slow hasher slows the producer, as an upstream pause would).
import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { KiB, MiB, randomSource, type StageResult, timed } from './measure.ts';

export async function hashMain(bytes: number, update: number): Promise<StageResult> {
  const src = randomSource();
  const run = () => {
    const h = createHash('sha256');
    for (let done = 0; done < bytes; done += update) {
      const off = done % src.length;
      h.update(src.subarray(off, off + Math.min(update, bytes - done)));
    }
    h.digest('hex');
  };
  run(); // warm-up
  return timed(`sha256-main-${update / KiB}k`, async () => {
    run();
    return { bytes };
  });
}

// Plain JavaScript, evaluated in the worker (no loader there). Each batch's buffer goes back
// with the acknowledgement, so the producer reuses a fixed pool instead of allocating.
const WORKER = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
let h = createHash('sha256');
parentPort.on('message', (m) => {
  if (m === 'end') { parentPort.postMessage(h.digest('hex')); h = createHash('sha256'); return; }
  h.update(new Uint8Array(m.buffer, 0, m.length));
  parentPort.postMessage(m.buffer, [m.buffer]);
});
`;

export async function hashWorker(bytes: number, batch: number, inflight: number): Promise<StageResult> {
  const src = randomSource();
  const worker = new Worker(WORKER, { eval: true });
  // The pool: `inflight` batch buffers, each either here (free) or in the worker.
  const free: ArrayBuffer[] = Array.from({ length: inflight }, () => new ArrayBuffer(batch));
  let waiting: (() => void) | undefined;
  let digest: ((hex: string) => void) | undefined;
  worker.on('message', (m: unknown) => {
    if (typeof m === 'string') {
      digest?.(m);
      return;
    }
    free.push(m as ArrayBuffer);
    waiting?.();
    waiting = undefined;
  });
  const chunk = 16 * KiB;
  const run = async (total: number) => {
    let ab: ArrayBuffer | undefined;
    let fill = 0;
    const take = async (): Promise<ArrayBuffer> => {
      while (free.length === 0) await new Promise<void>((r) => (waiting = r));
      return free.pop()!;
    };
    for (let done = 0; done < total; done += chunk) {
      ab ??= await take();
      const off = done % src.length;
      const n = Math.min(chunk, total - done);
      src.copy(new Uint8Array(ab), fill, off, off + n);
      fill += n;
      if (fill === batch) {
        worker.postMessage({ buffer: ab, length: fill }, [ab]);
        ab = undefined;
        fill = 0;
      }
    }
    if (ab && fill > 0) worker.postMessage({ buffer: ab, length: fill }, [ab]);
    else if (ab) free.push(ab);
    const hex = new Promise<string>((r) => (digest = r));
    worker.postMessage('end');
    const result = await hex;
    while (free.length < inflight) await new Promise<void>((r) => (waiting = r));
    return result;
  };
  await run(32 * MiB); // warm-up
  const r = await timed(`sha256-worker-${batch / KiB}k-x${inflight}`, async () => {
    await run(bytes);
    return { bytes };
  });
  await worker.terminate();
  return r;
}
