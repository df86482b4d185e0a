/**
 * The worker's side of WORKERS=N: who this process is (its 1-based slot), what it tells the
 * primary (listening, /metrics requests) and what it hears (stop, how many workers are up, a
 * request for its own metrics). The proxy itself is the same as in a single process.
 */
import cluster from 'node:cluster';
import type { Registry } from 'prom-client';
import { type ToPrimary, toWorker, WORKER_ID_VARIABLE } from './messages.js';

export interface MetricsText {
  readonly contentType: string;
  readonly body: string;
}

export interface WorkerSide {
  /** This worker's slot, 1-based; a restarted worker keeps its slot. */
  readonly id: number;
  /** The registry the primary aggregates (the proxy's own). */
  exposeRegistry(registry: Registry): void;
  /** /metrics: every worker's figures, aggregated by the primary. */
  metrics(): Promise<MetricsText>;
  /** Extra /healthz fields: workers up and configured, as the primary last said. */
  health(): Readonly<Record<string, number>>;
  /** Tells the primary this worker listens; `info` becomes the startup line. */
  listening(info: Record<string, unknown>): void;
  /** Called once when the primary asks for a stop or goes away (the IPC channel closes). */
  onStop(stop: () => void): void;
}

/** How long a /metrics request waits for the primary. */
const METRICS_TIMEOUT_MS = 5000;

function send(message: ToPrimary): void {
  if (process.connected) process.send?.(message);
}

/** This process's worker side, or undefined when it is not a drp cluster worker. */
export function joinCluster(configured: number): WorkerSide | undefined {
  const id = Number(process.env[WORKER_ID_VARIABLE]);
  if (!cluster.isWorker || !Number.isInteger(id) || id < 1) return undefined;

  let registry: Registry | undefined;
  let workers = { up: 0, configured };
  let stop: (() => void) | undefined;
  let stopRequested = false;
  let nextId = 0;
  const pending = new Map<number, { resolve: (m: MetricsText) => void; reject: (e: Error) => void }>();

  const requestStop = () => {
    stopRequested = true;
    stop?.();
  };
  process.on('message', (raw: unknown) => {
    const message = toWorker(raw);
    if (!message) return;
    switch (message.type) {
      case 'drp:collect':
        // Collected here, aggregated by the primary (prom-client's aggregate()).
        (registry ? registry.getMetricsAsJSON() : Promise.resolve([])).then(
          (metrics) => send({ type: 'drp:collected', id: message.id, metrics }),
          () => send({ type: 'drp:collected', id: message.id, metrics: [] }),
        );
        return;
      case 'drp:metrics-answer': {
        const waiting = pending.get(message.id);
        pending.delete(message.id);
        if (!waiting) return;
        if ('error' in message) waiting.reject(new Error(message.error));
        else waiting.resolve({ contentType: message.contentType, body: message.body });
        return;
      }
      case 'drp:workers':
        workers = { up: message.up, configured: message.configured };
        return;
      case 'drp:shutdown':
        requestStop();
        return;
    }
  });
  // The primary died (even kill -9): no worker outlives it.
  process.on('disconnect', requestStop);

  return {
    id,
    exposeRegistry(r) {
      registry = r;
    },
    metrics() {
      if (!process.connected) return Promise.reject(new Error('the primary is gone'));
      const requestId = nextId++;
      return new Promise<MetricsText>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(requestId);
          reject(new Error('the primary did not answer'));
        }, METRICS_TIMEOUT_MS);
        pending.set(requestId, {
          resolve: (m) => {
            clearTimeout(timer);
            resolve(m);
          },
          reject: (e) => {
            clearTimeout(timer);
            reject(e);
          },
        });
        send({ type: 'drp:metrics-request', id: requestId });
      });
    },
    health() {
      return { workers: workers.configured, workers_up: workers.up };
    },
    listening(info) {
      send({ type: 'drp:listening', info });
    },
    onStop(fn) {
      stop = fn;
      if (stopRequested) fn();
    },
  };
}
