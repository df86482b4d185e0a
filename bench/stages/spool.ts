// Spool-write stages: 200 MB written to a file on the cache's file system, one write in
// flight at a time (as a fill does), either as writev() of 16 KiB chunks gathered into a batch
// (what a fill does with the chunks that queued while the previous write ran; it pauses the
// upstream at 4 MiB queued) or as write() of one contiguous buffer per batch. The page cache
// absorbs the writes; the kernel's later writeback is not charged to the process.
import { open, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { KiB, randomSource, type StageResult, timed } from './measure.ts';

export async function spool(
  dir: string,
  bytes: number,
  mode: 'writev' | 'write',
  batch: number,
): Promise<StageResult> {
  const src = randomSource();
  const chunk = 16 * KiB;
  const run = async (file: string, total: number) => {
    const fh = await open(file, 'w', 0o600);
    try {
      for (let pos = 0; pos < total; pos += batch) {
        const n = Math.min(batch, total - pos);
        const off = pos % src.length;
        if (mode === 'write') {
          await fh.write(src, off, n, pos);
        } else {
          const chunks: Buffer[] = [];
          for (let o = 0; o < n; o += chunk) chunks.push(src.subarray(off + o, off + Math.min(o + chunk, n)));
          await fh.writev(chunks, pos);
        }
      }
    } finally {
      await fh.close();
    }
  };
  const warm = join(dir, 'warm');
  await run(warm, 16 * 1024 * KiB);
  await unlink(warm);
  const file = join(dir, 'spool');
  const r = await timed(`spool-${mode}-${batch / KiB}k`, async () => {
    await run(file, bytes);
    return { bytes };
  });
  await unlink(file);
  return r;
}
