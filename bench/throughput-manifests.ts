import type { BenchEnv } from './references/env.ts';
import type { Figure } from './report.ts';

export async function manifestBench(_env: BenchEnv): Promise<Figure[]> {
  return [];
}
