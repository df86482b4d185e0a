// A/B of two builds of drp-server on the same cold-fill bench, alternated round by round in one
// sitting so a change in the machine's load falls on both (issue 13: keep a change only if it
// wins). Each round starts each side fresh (empty cache, warmed up on a small image), then:
//   single   one curl client fetches the uncached 200 MB blob: drp's CPU seconds for the fill, wall
//   multi    16 curl clients at once for it on another fresh instance: CPU, last client, peak RSS
//
//   node --import tsx bench/ab.ts --a /path/to/checkoutA --b /path/to/checkoutB [--rounds 6]
//        [--what single,multi]      (each checkout built: packages/server/bin/drp-server.js)
// Prints every sample and, per figure, median, min–max and B/A of the medians.
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import { curlBatch } from './references/clients.ts';
import { createBenchEnv } from './references/env.ts';
import { measure } from './references/proc.ts';
import { startDrp } from './references/systems.ts';

function arg(name: string, fallback?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : fallback;
  if (v === undefined) throw new Error(`--${name} is required`);
  return v;
}

const sides = { A: resolve(arg('a')), B: resolve(arg('b')) };
const rounds = Number(arg('rounds', '6'));
const what = arg('what', 'single').split(',');
type Side = keyof typeof sides;
const samples = new Map<string, { A: number[]; B: number[] }>();
const add = (figure: string, side: Side, v: number) => {
  const s = samples.get(figure) ?? { A: [], B: [] };
  s[side].push(v);
  samples.set(figure, s);
};
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

const env = await createBenchEnv();
const loadBefore = loadavg();
try {
  const blob = await env.blob();
  const caDir = env.h.tempDir('drp-ca-ab');
  for (let round = 1; round <= rounds; round++) {
    // Alternate which side goes first, so neither always runs right after the other.
    const order: Side[] = round % 2 ? ['A', 'B'] : ['B', 'A'];
    for (const side of order) {
      for (const kind of what) {
        const n = kind === 'multi' ? 16 : 1;
        const sys = await startDrp(env.h, env.upstream, { caDir, root: sides[side] });
        try {
          await env.warmUp(sys);
          const { result, usage } = await measure(sys.pid as number, () => curlBatch(n, sys.curl(blob.path)));
          if (result.bytes !== n * blob.size) throw new Error(`${side}: got ${result.bytes} bytes`);
          add(`${kind} CPU s`, side, usage.cpuSeconds);
          add(`${kind} wall s`, side, result.wallSeconds);
          if (kind === 'multi') add(`${kind} peak RSS MB`, side, usage.peakRssMB);
          env.log(
            `round ${round} ${side} ${kind}: CPU ${usage.cpuSeconds.toFixed(2)} s, wall ${result.wallSeconds.toFixed(2)} s, RSS ${usage.peakRssMB.toFixed(0)} MB, load ${loadavg()[0]?.toFixed(1)}`,
          );
        } finally {
          await sys.close();
        }
      }
    }
  }
} finally {
  await env.close();
}
const f = (x: number) => x.toFixed(2);
process.stdout.write(
  `\nA = ${sides.A}\nB = ${sides.B}\n${rounds} rounds, load average ${loadBefore.map(f).join(' ')} before, ${loadavg().map(f).join(' ')} after\n\n`,
);
process.stdout.write(
  '| figure | A median (min–max) | B median (min–max) | B/A |\n| --- | --- | --- | --- |\n',
);
for (const [figure, s] of samples) {
  const range = (xs: number[]) => `${f(median(xs))} (${f(Math.min(...xs))}–${f(Math.max(...xs))})`;
  process.stdout.write(
    `| ${figure} | ${range(s.A)} | ${range(s.B)} | ${(median(s.B) / median(s.A)).toFixed(3)} |\n`,
  );
}
process.stdout.write(`\nsamples: ${JSON.stringify(Object.fromEntries(samples))}\n`);
