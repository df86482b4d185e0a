/**
 * WORKERS=N: the primary. It serves nothing itself; it forks N workers (this same command, with
 * DRP_WORKER_ID=slot) that all listen on the one port through node:cluster, and:
 * - starts worker 1 alone and the others once it listens, so the CA directory (drp's CA and
 *   http-mitm-proxy's unused one) is created by one process, never by several at once;
 * - prints the startup line when every worker listens (the fields of worker 1's, plus `workers`);
 * - restarts a worker that dies after it listened, with a backoff (0.5 s doubling to 30 s, back
 *   to 0.5 s once a worker has lived a minute); a worker that dies before it ever listened stops
 *   the whole daemon with its exit status (a bad CA, a port in use: restarting cannot help);
 * - on SIGTERM/SIGINT tells every worker to drain within SHUTDOWN_TIMEOUT less a margin,
 *   SIGKILLs any still alive at SHUTDOWN_TIMEOUT and exits 0; a second signal kills them at once;
 * - answers the workers' /metrics requests (aggregate.ts) and tells them how many are up
 *   (their /healthz).
 */
import cluster, { type Worker } from 'node:cluster';
import type { AccessLog } from '../access-log.js';
import type { ServerConfig } from '../config.js';
import { onShutdownSignals } from '../lifecycle.js';
import { createCollector } from './aggregate.js';
import { type ToWorker, toPrimary, WORKER_ID_VARIABLE, workerGraceMs } from './messages.js';

const FIRST_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 30_000;
/** A worker that lived this long was healthy: its next crash starts the backoff over. */
const HEALTHY_AFTER_MS = 60_000;

interface Slot {
  readonly id: number;
  worker: Worker | undefined;
  listening: boolean;
  /** Set once this slot's worker has listened at least once. */
  everListened: boolean;
  startedAt: number;
  backoffMs: number;
  timer: NodeJS.Timeout | undefined;
}

export interface PrimaryOptions {
  readonly config: ServerConfig;
  readonly log: AccessLog;
  /** Prints the startup lines; `info` as a single process would print it, plus `workers`. */
  readonly announce: (info: Record<string, unknown>) => void;
  /** Exits the process (tests of the primary pass their own). */
  readonly exit?: (code: number) => void;
}

export function runPrimary(options: PrimaryOptions): void {
  const { config, log } = options;
  const exit = options.exit ?? process.exit;
  const count = config.workers;
  const slots: Slot[] = Array.from({ length: count }, (_, i) => ({
    id: i + 1,
    worker: undefined,
    listening: false,
    everListened: false,
    startedAt: 0,
    backoffMs: FIRST_BACKOFF_MS,
    timer: undefined,
  }));
  const collector = createCollector();
  let restarts = 0;
  let announced = false;
  let stopping = false;
  let allGone: (() => void) | undefined;

  const live = () => slots.flatMap((s) => (s.worker ? [s.worker] : []));
  const up = () => slots.filter((s) => s.listening).length;
  const tell = (worker: Worker, message: ToWorker) => {
    if (worker.isConnected()) worker.send(message);
  };
  const broadcastHealth = () => {
    for (const s of slots)
      if (s.worker && s.listening) tell(s.worker, { type: 'drp:workers', up: up(), configured: count });
  };

  function fork(slot: Slot): void {
    slot.timer = undefined;
    slot.listening = false;
    slot.startedAt = Date.now();
    const worker = cluster.fork({ [WORKER_ID_VARIABLE]: String(slot.id) });
    slot.worker = worker;
    worker.on('message', (raw: unknown) => {
      const message = toPrimary(raw);
      if (!message) return;
      if (message.type === 'drp:listening') listened(slot, message.info);
      else if (message.type === 'drp:collected') collector.collected(message.id, message.metrics);
      else if (message.type === 'drp:metrics-request') {
        collector
          .render(
            slots.filter((s) => s.listening && s.worker).map((s) => s.worker as Worker),
            { configured: count, up: up(), restarts },
          )
          .then(
            (m) => tell(worker, { type: 'drp:metrics-answer', id: message.id, ...m }),
            (error: Error) =>
              tell(worker, { type: 'drp:metrics-answer', id: message.id, error: error.message }),
          );
      }
    });
    worker.on('exit', (code, signal) => exited(slot, worker, code, signal));
  }

  function listened(slot: Slot, info: Record<string, unknown>): void {
    slot.listening = true;
    const restarted = slot.everListened;
    slot.everListened = true;
    if (stopping) {
      if (slot.worker)
        tell(slot.worker, { type: 'drp:shutdown', graceMs: workerGraceMs(config.timeouts.shutdownMs) });
      return;
    }
    if (restarted) {
      log.event('worker', `worker ${slot.id} restarted (pid ${slot.worker?.process.pid})`, {
        worker_id: slot.id,
        pid: slot.worker?.process.pid,
      });
    }
    // Worker 1 made the CA directory; the others may start now.
    if (slot.id === 1 && !announced) for (const s of slots.slice(1)) if (!s.worker) fork(s);
    if (!announced && up() === count) {
      announced = true;
      options.announce({
        ...info,
        workers: count,
        pid: process.pid,
        worker_pids: live().map((w) => w.process.pid),
      });
    }
    broadcastHealth();
  }

  function exited(slot: Slot, worker: Worker, code: number | null, signal: string | null): void {
    if (slot.worker !== worker) return;
    slot.worker = undefined;
    slot.listening = false;
    if (stopping) {
      if (live().length === 0) allGone?.();
      return;
    }
    broadcastHealth();
    const how = signal ? `signal ${signal}` : `exit status ${code}`;
    if (!slot.everListened) {
      // It never served: a bad CA, a port in use, an unusable directory. Restarting cannot help.
      log.event('error', `worker ${slot.id} stopped before it listened (${how}): stopping`, {
        worker_id: slot.id,
      });
      stopAll(typeof code === 'number' && code !== 0 ? code : 1);
      return;
    }
    if (Date.now() - slot.startedAt >= HEALTHY_AFTER_MS) slot.backoffMs = FIRST_BACKOFF_MS;
    const delay = slot.backoffMs;
    slot.backoffMs = Math.min(MAX_BACKOFF_MS, slot.backoffMs * 2);
    restarts++;
    log.event('warning', `worker ${slot.id} died (${how}): restarting it in ${delay} ms`, {
      worker_id: slot.id,
      pid: worker.process.pid,
    });
    slot.timer = setTimeout(() => fork(slot), delay);
  }

  let draining: Promise<void> | undefined;
  /** Drains every worker; resolves when none is left (SIGKILL for those alive at the deadline). */
  function drain(): Promise<void> {
    draining ??= drainOnce();
    return draining;
  }
  async function drainOnce(): Promise<void> {
    stopping = true;
    for (const s of slots) {
      if (s.timer) clearTimeout(s.timer);
      s.timer = undefined;
    }
    const graceMs = workerGraceMs(config.timeouts.shutdownMs);
    for (const w of live()) tell(w, { type: 'drp:shutdown', graceMs });
    if (live().length === 0) return;
    await new Promise<void>((resolve) => {
      const deadline = setTimeout(() => {
        const left = live();
        if (left.length > 0) {
          log.event('warning', `${left.length} worker(s) still running at SHUTDOWN_TIMEOUT: killed`);
          for (const w of left) w.process.kill('SIGKILL');
        }
      }, config.timeouts.shutdownMs);
      allGone = () => {
        clearTimeout(deadline);
        resolve();
      };
    });
  }

  function stopAll(code: number): void {
    if (stopping) return;
    process.exitCode = code;
    drain().then(() => exit(code));
  }

  onShutdownSignals(
    async (signal) => {
      log.event(
        'shutdown',
        `${signal}: stopping ${live().length} worker(s); in-flight pulls and pushes may finish (up to ${config.timeouts.shutdownMs} ms)`,
      );
      const since = Date.now();
      await drain();
      log.event('shutdown', `stopped after ${Date.now() - since} ms`);
    },
    (code) => {
      // A second signal: nothing is left behind.
      for (const w of live()) w.process.kill('SIGKILL');
      exit(code);
    },
  );
  fork(slots[0] as Slot);
}
