/**
 * WORKERS: how many worker processes serve the one port. `auto` is the CPUs this process may
 * run on (os.availableParallelism: affinity, not a container's CPU quota, which is why it is
 * not the default; docs/scale-out.md).
 */
import { availableParallelism } from 'node:os';
import { Expected } from '../errors.js';

/** More would only add processes that wait for the same cores and memory. */
export const MAX_WORKERS = 64;

export function workerCount(value: string): number {
  const v = value.trim().toLowerCase();
  if (v === 'auto') return Math.min(MAX_WORKERS, Math.max(1, availableParallelism()));
  if (!/^\d{1,3}$/.test(v) || Number(v) < 1 || Number(v) > MAX_WORKERS) {
    throw new Expected(`\`auto\` or a number of processes from 1 to ${MAX_WORKERS}`);
  }
  return Number(v);
}
