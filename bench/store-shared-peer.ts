// One process of bench/store-shared.ts on the shared directory. `hammer`: hits the blobs as fast
// as it can until SIGTERM (every hit journals a touch, which the others tail). `measure`: runs
// HITS hits and prints its CPU per hit. PEER_POLL_MS sets how often it reads the others' journals.
import { BlobStore } from '../packages/core/src/store/blob-store.ts';

const [mode, dir, ...digests] = process.argv.slice(2);
const store = await BlobStore.open({
  dir: dir ?? '',
  maxSizeBytes: 1 << 30,
  inactiveMs: 0,
  peerPollMs: Number(process.env.PEER_POLL_MS ?? 1000),
});
const buffer = Buffer.alloc(64 * 1024);

async function hit(i: number): Promise<void> {
  const handle = await store.open(digests[i % digests.length] as string);
  if (!handle) throw new Error('miss');
  await handle.read(buffer, 0);
  await handle.release();
}

if (mode === 'measure') {
  const hits = Number(process.env.HITS ?? 20_000);
  for (let i = 0; i < 2000; i += 1) await hit(i); // warm-up
  const cpu = process.cpuUsage();
  for (let i = 0; i < hits; i += 1) await hit(i);
  const used = process.cpuUsage(cpu);
  process.stdout.write(`${JSON.stringify({ cpuUs: (used.user + used.system) / hits })}\n`);
} else {
  let stop = false;
  process.once('SIGTERM', () => {
    stop = true;
  });
  for (let i = 0; !stop; i += 1) {
    await hit(i);
    if (i % 200 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
}
await store.close();
process.exit(0);
