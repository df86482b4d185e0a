/**
 * `drp-server prefetch --proxy URL [--platform all|os/arch,...] [--ca-file PEM] IMAGE...`:
 * pulls images through a running drp so that the next pull of them is all hits. Nothing is
 * kept locally; every blob is hashed as it streams past. See prefetch/ for the pieces.
 *
 * Exit status: 0 when every image was fetched, 1 when any failed (each is named), 2 usage.
 */
import { readFile } from 'node:fs/promises';
import { rootCertificates } from 'node:tls';
import { parseArgs } from 'node:util';
import { MultiBar, Presets } from 'cli-progress';
import { defaultAuthFile, readAuthFile } from '../prefetch/authfile.js';
import { type Platform, type PullProgress, parsePlatforms, prefetchImage } from '../prefetch/pull.js';
import { type ImageReference, parseImageReference } from '../prefetch/reference.js';
import { RegistrySession } from '../prefetch/registry-session.js';
import { fetchProxyCa, type ProxyEndpoint, parseProxyUrl } from '../prefetch/through-proxy.js';
import { type CommandIO, processIO } from './cache.js';
import { humanBytes } from './output.js';

export const PREFETCH_USAGE = `Usage: drp-server prefetch --proxy URL [options] IMAGE...
  --proxy URL            the running drp, e.g. http://user:password@proxy:3128 (required)
  --platform LIST        all (default) or os/arch[/variant],... of a multi-platform image
  --ca-file PEM          the proxy's CA certificate (default: fetched from URL/ca.crt)
  --file LIST            read images from LIST too, one per line (# comments)
  --authfile PATH        docker-style registry credentials (default ~/.docker/config.json)
  --concurrency N        transfers at once, across all images (default 4)
IMAGE is what docker pull takes: alpine, ghcr.io/org/app:1.2, registry:5000/x@sha256:...
`;

const OPTIONS = {
  proxy: { type: 'string' },
  platform: { type: 'string' },
  'ca-file': { type: 'string' },
  file: { type: 'string', multiple: true },
  authfile: { type: 'string' },
  concurrency: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** A limiter: at most `n` tasks run at once, the rest wait in order. */
export function limiter(n: number): <T>(task: () => Promise<T>) => Promise<T> {
  let running = 0;
  const waiting: (() => void)[] = [];
  return async (task) => {
    if (running >= n) await new Promise<void>((resolve) => waiting.push(resolve));
    running += 1;
    try {
      return await task();
    } finally {
      running -= 1;
      waiting.shift()?.();
    }
  };
}

interface Setup {
  readonly images: ImageReference[];
  readonly platforms: Platform[] | undefined;
  readonly proxy: ProxyEndpoint;
  readonly session: RegistrySession;
  readonly concurrency: number;
}

/** A mistake in the command line: printed with the usage, exit 2. */
class PrefetchUsageError extends Error {}

function usage<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    throw new PrefetchUsageError((error as Error).message);
  }
}

async function setup(argv: readonly string[]): Promise<Setup> {
  const { values, positionals } = usage(() =>
    parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true }),
  );
  if (!values.proxy) throw new PrefetchUsageError('--proxy URL is required');
  const proxyText = values.proxy;
  const lines: string[] = [...positionals];
  for (const file of values.file ?? []) {
    const text = await readFile(file, 'utf8').catch((error: Error) => {
      throw new Error(`--file ${file}: ${error.message}`);
    });
    lines.push(...text.split('\n').map((l) => l.replace(/#.*$/, '').trim()));
  }
  const images = usage(() => lines.filter((l) => l !== '').map(parseImageReference));
  if (images.length === 0) throw new PrefetchUsageError('no images given');
  const concurrency = Number(values.concurrency ?? '4');
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64)
    throw new PrefetchUsageError('--concurrency takes a whole number from 1 to 64');
  const platforms = usage(() => parsePlatforms(values.platform));
  const endpoint = usage(() => parseProxyUrl(proxyText));
  const proxyCa = values['ca-file']
    ? await readFile(values['ca-file'], 'utf8')
    : await fetchProxyCa(endpoint);
  const proxy: ProxyEndpoint = { ...endpoint, ca: [...rootCertificates, proxyCa] };
  const authFile = values.authfile ?? defaultAuthFile();
  const credentials = await readAuthFile(authFile, values.authfile !== undefined);
  return { images, platforms, proxy, session: new RegistrySession(proxy, credentials), concurrency };
}

export async function runPrefetch(argv: readonly string[], io: CommandIO = processIO): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.out(PREFETCH_USAGE);
    return 0;
  }
  let s: Setup;
  try {
    s = await setup(argv);
  } catch (error) {
    if (error instanceof PrefetchUsageError) {
      io.err(`drp-server prefetch: ${error.message}\n${PREFETCH_USAGE}`);
      return 2;
    }
    io.err(`drp-server prefetch: ${(error as Error).message}\n`);
    return 1;
  }
  const started = Date.now();
  const deps = {
    session: s.session,
    limit: limiter(s.concurrency),
    blobs: new Map<string, Promise<number>>(),
  };
  const tty = process.stderr.isTTY === true && io === processIO;
  const bars = tty
    ? new MultiBar(
        {
          format: ' {bar} {percentage}% | {image} | {done}/{size} | {state}',
          hideCursor: true,
          clearOnComplete: false,
          stream: process.stderr,
        },
        Presets.shades_classic,
      )
    : undefined;
  const failed: { image: string; reason: string }[] = [];
  let manifests = 0;
  let blobs = 0;
  let bytes = 0;
  await Promise.all(
    s.images.map(async (image) => {
      const bar = bars?.create(1, 0, { image: image.text, done: '0 B', size: '?', state: 'waiting' });
      let total = 0;
      let done = 0;
      const progress: PullProgress = {
        total(n) {
          total += n;
          bar?.setTotal(Math.max(total, 1));
          bar?.update(done, { size: humanBytes(total) });
        },
        done(n) {
          done += n;
          bar?.update(Math.min(done, Math.max(total, 1)), { done: humanBytes(done) });
        },
        status(text) {
          bar?.update(done, { state: text });
        },
      };
      try {
        const result = await prefetchImage(image, s.platforms, deps, progress);
        manifests += result.manifests;
        blobs += result.blobs;
        bytes += result.bytes;
      } catch (error) {
        bar?.update(done, { state: 'FAILED' });
        failed.push({ image: image.text, reason: (error as Error).message });
      }
    }),
  );
  bars?.stop();
  for (const f of failed) io.err(`drp-server prefetch: FAILED ${f.image}: ${f.reason}\n`);
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  io.out(
    `prefetch: ${s.images.length - failed.length}/${s.images.length} images, ${manifests} manifests, ${blobs} blobs (${humanBytes(bytes)}) in ${seconds} s${
      failed.length > 0 ? `; failed: ${failed.map((f) => f.image).join(' ')}` : ''
    }\n`,
  );
  return failed.length > 0 ? 1 : 0;
}
