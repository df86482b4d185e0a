// What every bench shares in one run: a harness (temp dirs, test CA, processes), the upstream
// registry (distribution 2.8 over TLS, no auth, so distribution's proxy can use it too), the
// test data pushed to it once, and a scratch dir on tmpfs for pulled images.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createHarness, type Harness, type ImageInfo, type Registry } from '../../test/harness/index.ts';
import { curlBatch, timedSkopeoPull } from './clients.ts';
import type { System } from './systems.ts';

export const MB = 1e6;

export interface BenchBlob {
  repo: string;
  digest: string;
  size: number;
  /** /v2/<repo>/blobs/<digest> */
  path: string;
}

export interface BenchImage {
  repoRef: string;
  image: ImageInfo;
}

export interface BenchEnv {
  h: Harness;
  upstream: Registry;
  /** A directory on tmpfs (when there is one) for skopeo's output. */
  scratch: string;
  /** Fewer runs, for a quick look (BENCH_QUICK=1). */
  quick: boolean;
  /** Whether a system takes part ($BENCH_SYSTEMS, comma-separated; default all). */
  wants(system: string): boolean;
  /** One ~200 MB layer blob, pushed once. */
  blob(): Promise<BenchBlob>;
  /** A 3-layer image of ~350 MB, pushed once. */
  image(): Promise<BenchImage>;
  /**
   * Warms a freshly started system's code paths (JIT, TLS contexts, upstream connections) with
   * a small unrelated image pulled through it, so "cold" means an empty cache, not a cold process.
   */
  warmUp(sys: System): Promise<void>;
  log(msg: string): void;
  close(): Promise<void>;
}

export async function createBenchEnv(): Promise<BenchEnv> {
  const h = createHarness();
  const upstream = await h.startRegistry();
  const scratchBase = process.env.BENCH_SCRATCH ?? '/dev/shm';
  let scratch: string;
  try {
    scratch = mkdtempSync(`${scratchBase}/drp-bench-`);
  } catch {
    scratch = mkdtempSync(`${tmpdir()}/drp-bench-`);
  }
  h.defer(() => rmSync(scratch, { recursive: true, force: true }));
  const started = Date.now();
  const log = (msg: string) => {
    process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${msg}\n`);
  };

  const only = process.env.BENCH_SYSTEMS?.split(',').map((s) => s.trim());
  let blob: Promise<BenchBlob> | undefined;
  let image: Promise<BenchImage> | undefined;
  let warmup: Promise<BenchImage> | undefined;
  return {
    h,
    upstream,
    scratch,
    quick: process.env.BENCH_QUICK === '1',
    wants: (system) => !only || only.includes(system),
    log,
    blob() {
      blob ??= (async () => {
        log('creating and pushing the 200 MB blob');
        const img = await h.createImage({ layers: [200 * MB] });
        await upstream.push(img, 'bench/blob:v1');
        const layer = img.layers[0]!;
        return {
          repo: 'bench/blob',
          digest: layer.digest,
          size: layer.size,
          path: `/v2/bench/blob/blobs/${layer.digest}`,
        };
      })();
      return blob;
    },
    image() {
      image ??= (async () => {
        log('creating and pushing the 3-layer 350 MB image');
        const img = await h.createImage({ layers: [200 * MB, 100 * MB, 50 * MB] });
        await upstream.push(img, 'bench/app:v1');
        return { repoRef: 'bench/app:v1', image: img };
      })();
      return image;
    },
    async warmUp(sys) {
      warmup ??= (async () => {
        const img = await h.createImage({ layers: [2 * MB, 1 * MB] });
        await upstream.push(img, 'bench/warmup:v1');
        return { repoRef: 'bench/warmup:v1', image: img };
      })();
      const { repoRef, image: img } = await warmup;
      for (let i = 0; i < 2; i++) await timedSkopeoPull(sys.skopeo(repoRef), scratch);
      await curlBatch(4, sys.curl(`/v2/bench/warmup/blobs/${img.layers[0]!.digest}`));
    },
    close: () => h.close(),
  };
}
