/**
 * What the primary and its workers say to each other over the cluster's IPC channel. Every
 * message has a `drp:` type, so prom-client's or node's own messages are never mistaken for one.
 */
import type { Registry } from 'prom-client';

/** A worker's metrics as prom-client's getMetricsAsJSON() gives them (what aggregate() takes). */
export type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

export type ToPrimary =
  /** Listening on the port; `info` is the startup line's fields. */
  | { type: 'drp:listening'; info: Record<string, unknown> }
  /** A client asked this worker for /metrics: the primary collects every worker's. */
  | { type: 'drp:metrics-request'; id: number }
  /** A worker's answer to drp:collect. */
  | { type: 'drp:collected'; id: number; metrics: MetricsJson };

export type ToWorker =
  | { type: 'drp:metrics-answer'; id: number; contentType: string; body: string }
  | { type: 'drp:metrics-answer'; id: number; error: string }
  | { type: 'drp:collect'; id: number }
  /** Workers up (listening) and configured: what /healthz shows. */
  | { type: 'drp:workers'; up: number; configured: number }
  /** Stop gracefully within `graceMs`. */
  | { type: 'drp:shutdown'; graceMs: number };

function isTyped(message: unknown): message is { type: string } {
  return (
    typeof message === 'object' &&
    message !== null &&
    typeof (message as { type?: unknown }).type === 'string' &&
    (message as { type: string }).type.startsWith('drp:')
  );
}

export function toPrimary(message: unknown): ToPrimary | undefined {
  return isTyped(message) ? (message as ToPrimary) : undefined;
}

export function toWorker(message: unknown): ToWorker | undefined {
  return isTyped(message) ? (message as ToWorker) : undefined;
}

/** The environment variable that tells a forked process which worker slot (1-based) it fills. */
export const WORKER_ID_VARIABLE = 'DRP_WORKER_ID';

/**
 * How long a worker drains when the primary stops: SHUTDOWN_TIMEOUT less a margin for closing
 * the cache and exiting, so every worker is gone before the primary's own deadline.
 */
export function workerGraceMs(shutdownMs: number): number {
  return Math.max(0, shutdownMs - Math.min(1000, shutdownMs / 4));
}
