// Which Node.js binary runs drp-server and the stage benches: `--node PATH` on the command
// line, else $BENCH_NODE, else the Node running the bench itself. The bench's own process (the
// clients' driver, the harness) always stays on the Node it was started with.
import { execFileSync } from 'node:child_process';

/** Removes `--node PATH` (or `--node=PATH`) from argv and exports it as BENCH_NODE. */
export function takeNodeArg(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--node') {
      const path = argv[++i];
      if (!path) throw new Error('--node needs a path to a node binary');
      process.env.BENCH_NODE = path;
    } else if (a.startsWith('--node=')) {
      process.env.BENCH_NODE = a.slice('--node='.length);
    } else {
      out.push(a);
    }
  }
  return out;
}

export function benchNode(): string {
  return process.env.BENCH_NODE || process.execPath;
}

/** `v24.x.y` of the bench's Node binary (throws if it does not run). */
export function benchNodeVersion(): string {
  return execFileSync(benchNode(), ['--version'], { encoding: 'utf8' }).trim();
}
