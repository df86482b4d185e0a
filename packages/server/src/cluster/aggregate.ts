/**
 * /metrics across workers. Only the primary sees every worker, so the worker a scrape lands on
 * asks the primary (drp:metrics-request), which collects each listening worker's registry as
 * JSON (drp:collect) and merges them with prom-client's AggregatorRegistry.aggregate():
 * counters and histograms sum, gauges follow their `aggregator` (metrics.ts: sum for requests
 * in flight, max for figures every worker reads from the one cache directory). The primary adds
 * its own figures: workers configured, up, answering, and restarts.
 */
import type { Worker } from 'node:cluster';
import type { MetricsJson, ToWorker } from './messages.js';

/** A worker that has not answered within this is left out of one scrape (and counted). */
const COLLECT_TIMEOUT_MS = 3000;

export interface ClusterFigures {
  readonly configured: number;
  readonly up: number;
  readonly restarts: number;
}

export interface Collector {
  /** Feeds a worker's drp:collected answer. */
  collected(id: number, metrics: MetricsJson): void;
  /** Every listening worker's metrics, aggregated, plus the primary's own. */
  render(workers: readonly Worker[], figures: ClusterFigures): Promise<{ contentType: string; body: string }>;
}

function primaryText(figures: ClusterFigures, answering: number): string {
  return [
    '# HELP drp_workers Worker processes serving the port (WORKERS), by state',
    '# TYPE drp_workers gauge',
    `drp_workers{state="configured"} ${figures.configured}`,
    `drp_workers{state="up"} ${figures.up}`,
    `drp_workers{state="answering"} ${answering}`,
    '# HELP drp_worker_restarts_total Workers restarted after they died',
    '# TYPE drp_worker_restarts_total counter',
    `drp_worker_restarts_total ${figures.restarts}`,
    '',
  ].join('\n');
}

export function createCollector(): Collector {
  let nextId = 0;
  const rounds = new Map<number, { answers: MetricsJson[]; expected: number; done: () => void }>();
  return {
    collected(id, metrics) {
      const round = rounds.get(id);
      if (!round) return;
      round.answers.push(metrics);
      if (round.answers.length >= round.expected) round.done();
    },
    async render(workers, figures) {
      const id = nextId++;
      const answers: MetricsJson[] = [];
      const targets = workers.filter((w) => w.isConnected());
      await new Promise<void>((resolve) => {
        const timer = setTimeout(finish, COLLECT_TIMEOUT_MS);
        function finish() {
          clearTimeout(timer);
          rounds.delete(id);
          resolve();
        }
        rounds.set(id, { answers, expected: targets.length, done: finish });
        if (targets.length === 0) finish();
        const ask: ToWorker = { type: 'drp:collect', id };
        for (const w of targets) w.send(ask);
      });
      // Loaded on the first scrape only: a primary that is never scraped never loads prom-client.
      const { AggregatorRegistry } = await import('prom-client');
      const merged = AggregatorRegistry.aggregate(answers);
      return {
        contentType: merged.contentType,
        body: `${await merged.metrics()}\n${primaryText(figures, answers.length)}`,
      };
    },
  };
}
