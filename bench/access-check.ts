// What the default access check (VERIFY_BLOB_ACCESS=private) costs a warm pull, as a ratio to
// the check off, in one run on loopback. The content is private (first pulled with one user's
// own credentials), and each measured pull is by another user with access, never seen before
// (so no remembered grant helps): the worst case of `private`. A pull by the same user, or of
// public content, makes no check at all in `private` mode; that control is measured too.
//
//   node --import tsx bench/access-check.ts        (BENCH_QUICK=1: fewer rounds)
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startDrp } from '../test/e2e/lib/daemon.ts';
import { createHarness, run } from '../test/harness/index.ts';

const ROUNDS = process.env.BENCH_QUICK ? 3 : 7;
const IMAGES = [
  { label: '8 layers x 2 MB', layers: Array.from({ length: 8 }, () => 2_000_000) },
  { label: '3 layers x 60 MB', layers: [60_000_000, 60_000_000, 60_000_000] },
];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

async function main(): Promise<void> {
  const h = createHarness();
  try {
    const ca = await h.testCA();
    const users = Array.from({ length: 2 * ROUNDS * IMAGES.length + 2 }, (_, i) => `user${i}`);
    const htpasswd = join(h.tempDir('auth'), 'htpasswd');
    const lines: string[] = [];
    for (const user of users) lines.push((await run('htpasswd', ['-Bbn', user, `${user}-pw`])).stdout.trim());
    await writeFile(htpasswd, `${lines.join('\n')}\n`);
    const registry = await h.startRegistry({
      names: ['registry.test'],
      config: { auth: { htpasswd: { realm: 'bench', path: htpasswd } } },
    });
    const env = (mode: string) => ({
      REGISTRIES: registry.namedHostPort,
      UPSTREAM_MAPPINGS: 'registry.test=127.0.0.1',
      UPSTREAM_CA_FILE: ca.certPath,
      CACHE_DIR: h.tempDir(`cache-${mode}`),
      CA_DIR: h.tempDir(`ca-${mode}`),
      VERIFY_BLOB_ACCESS: mode,
    });
    const drps = {
      private: await startDrp(h, { env: env('private') }),
      off: await startDrp(h, { env: env('off') }),
    };
    let next = 1;
    const rows: string[] = [];
    for (const spec of IMAGES) {
      const image = await h.createImage({ layers: spec.layers });
      await registry.push(image, 'bench/app:v1', { creds: 'user0:user0-pw', timeoutMs: 300_000 });
      const pull = async (mode: keyof typeof drps, user: string) => {
        const drp = drps[mode];
        const started = performance.now();
        await h.pullImage(registry.namedHostPort, 'bench/app:v1', {
          proxy: drp.url,
          certDir: drp.certDir,
          creds: `${user}:${user}-pw`,
          timeoutMs: 300_000,
        });
        return performance.now() - started;
      };
      // Cold, by user0: the content is user0's (private).
      await pull('private', 'user0');
      await pull('off', 'user0');
      const samples = { private: [] as number[], off: [] as number[], same: [] as number[] };
      for (let round = 0; round < ROUNDS; round += 1) {
        // Alternate the order so neither mode always runs second.
        const order: (keyof typeof drps)[] = round % 2 === 0 ? ['private', 'off'] : ['off', 'private'];
        for (const mode of order) samples[mode].push(await pull(mode, users[next++] as string));
        samples.same.push(await pull('private', 'user0'));
      }
      const p = median(samples.private);
      const o = median(samples.off);
      const s = median(samples.same);
      rows.push(
        `| ${spec.label} | ${o.toFixed(0)} | ${p.toFixed(0)} | ${(p / o).toFixed(2)}x | ${s.toFixed(0)} | ${(s / o).toFixed(2)}x |`,
      );
    }
    process.stdout.write(
      [
        `warm skopeo pulls through drp, medians of ${ROUNDS} alternating rounds (ms):`,
        '',
        '| image | check off | private, another user (first time) | ratio | private, the same user | ratio |',
        '| --- | --- | --- | --- | --- | --- |',
        ...rows,
        '',
      ].join('\n'),
    );
  } finally {
    await h.close();
  }
}

await main();
