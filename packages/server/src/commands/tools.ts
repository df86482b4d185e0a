/** Dispatch of the one-shot operator tools, kept out of cli.ts. */
import { ConfigError, loadConfig } from '../config.js';
import { runCache } from './cache.js';
import { runPrefetch } from './prefetch.js';

export async function runTool(name: 'cache' | 'prefetch', argv: readonly string[]): Promise<number> {
  try {
    if (name === 'cache') return await runCache(argv, () => loadConfig().cacheDir);
    return await runPrefetch(argv);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`drp-server: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
}
