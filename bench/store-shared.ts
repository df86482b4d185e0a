// What sharing the cache directory costs a process serving hits: CPU per cached hit (open,
// read 64 KiB, release, i.e. the store's part of a hit) in a measured process
//   A  alone on the directory,
//   B  while three other processes hit the same blobs, tailing their journals (default 1 s poll),
//   C  the same three, with the measured process not reading their journals (poll off),
// so B/C is the cost of tailing and A/C the cost of the CPU contention of the machine. Rounds
// alternate A, B, C in one sitting; CPU seconds of the measured process; medians and range.
//
//   node --import tsx bench/store-shared.ts        (BENCH_QUICK=1: fewer rounds)
import { type ChildProcess, execFile, fork } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { BlobStore } from '../packages/core/src/store/blob-store.ts';

const ROUNDS = process.env.BENCH_QUICK ? 3 : 7;
const BLOBS = 200;
const PEER = join(import.meta.dirname, 'store-shared-peer.ts');
const run = promisify(execFile);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

async function measure(dir: string, digests: string[], pollMs: number): Promise<number> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', PEER, 'measure', dir, ...digests], {
    env: { ...process.env, PEER_POLL_MS: String(pollMs) },
    maxBuffer: 1 << 20,
  });
  return (JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as { cpuUs: number }).cpuUs;
}

function journalBytes(dir: string): number {
  return readdirSync(dir)
    .filter((n) => n.startsWith('drp-access.'))
    .reduce((sum, n) => sum + statSync(join(dir, n)).size, 0);
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'drp-bench-shared-'));
  const peers: ChildProcess[] = [];
  try {
    const setup = await BlobStore.open({ dir, maxSizeBytes: 1 << 30, inactiveMs: 0 });
    const digests: string[] = [];
    for (let i = 0; i < BLOBS; i += 1) {
      const data = randomBytes(64 * 1024);
      const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
      await setup.putBuffer(digest, data);
      digests.push(digest);
    }
    await setup.close();
    const results = { A: [] as number[], B: [] as number[], C: [] as number[] };
    let linesPerSecond = 0;
    for (let round = 0; round < ROUNDS; round += 1) {
      results.A.push(await measure(dir, digests, 1000));
      for (let i = 0; i < 3; i += 1)
        peers.push(fork(PEER, ['hammer', dir, ...digests], { execArgv: ['--import', 'tsx'] }));
      await delay(3000);
      const before = journalBytes(dir);
      const started = performance.now();
      results.B.push(await measure(dir, digests, 1000));
      linesPerSecond = (journalBytes(dir) - before) / 80 / ((performance.now() - started) / 1000);
      results.C.push(await measure(dir, digests, 1e9));
      for (const peer of peers.splice(0)) {
        peer.kill('SIGTERM');
        await new Promise((resolve) => peer.once('exit', resolve));
      }
    }
    const fmt = (xs: number[]) =>
      `${median(xs).toFixed(1)} µs (range ${Math.min(...xs).toFixed(1)}-${Math.max(...xs).toFixed(1)})`;
    console.log(`CPU per hit in the store (open + 64 KiB read + release), ${ROUNDS} rounds A/B/C:`);
    console.log(`  A alone:                                  ${fmt(results.A)}`);
    console.log(`  B 3 other processes hitting, tailed:      ${fmt(results.B)}`);
    console.log(`  C 3 other processes hitting, not tailed:  ${fmt(results.C)}`);
    console.log(`  B/C (tailing): ${(median(results.B) / median(results.C)).toFixed(2)}`);
    console.log(`  C/A (contention): ${(median(results.C) / median(results.A)).toFixed(2)}`);
    console.log(`  journal lines the others wrote: ~${Math.round(linesPerSecond)} per second (last round)`);
  } finally {
    for (const peer of peers) peer.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
