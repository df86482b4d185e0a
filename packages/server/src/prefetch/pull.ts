/**
 * What a pull fetches, without keeping any of it: the manifest (and, for an index, the
 * manifests of the platforms asked for), then every config and layer blob, each read to the
 * end and hashed so a wrong byte is a failure. Blobs shared by several images are fetched once.
 */
import { createHash } from 'node:crypto';
import type { ImageReference } from './reference.js';
import type { RegistrySession } from './registry-session.js';
import { readBody } from './through-proxy.js';

export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

export interface Platform {
  readonly os: string;
  readonly architecture: string;
  readonly variant?: string;
}

/** `all` -> undefined (every platform); `linux/amd64,linux/arm/v7` -> the list. */
export function parsePlatforms(text: string | undefined): Platform[] | undefined {
  if (text === undefined || text === 'all') return undefined;
  return text.split(',').map((part) => {
    const [os, architecture, variant] = part.trim().split('/');
    if (!os || !architecture)
      throw new Error(`--platform: expected all or os/arch[/variant], got ${JSON.stringify(part)}`);
    return { os, architecture, ...(variant ? { variant } : {}) };
  });
}

export interface PullProgress {
  /** More bytes to fetch were discovered (a manifest listed them). */
  total(bytes: number): void;
  /** Bytes fetched (or already fetched by another image). */
  done(bytes: number): void;
  status(text: string): void;
}

interface Descriptor {
  readonly digest: string;
  readonly size: number;
  readonly mediaType?: string;
  readonly platform?: Platform;
}

interface ManifestJson {
  readonly mediaType?: string;
  readonly manifests?: Descriptor[];
  readonly config?: Descriptor;
  readonly layers?: Descriptor[];
}

export interface PullDeps {
  readonly session: RegistrySession;
  /** Bounds how many transfers run at once, across every image. */
  readonly limit: <T>(task: () => Promise<T>) => Promise<T>;
  /** Blob fetches by `registry digest`, shared by every image of one run. */
  readonly blobs: Map<string, Promise<number>>;
}

export interface PullResult {
  readonly manifests: number;
  readonly blobs: number;
  readonly bytes: number;
}

export async function prefetchImage(
  ref: ImageReference,
  platforms: Platform[] | undefined,
  deps: PullDeps,
  progress: PullProgress,
): Promise<PullResult> {
  progress.status('manifest');
  const top = await fetchManifest(ref, ref.reference, deps);
  let images: ManifestJson[] = [top];
  let manifests = 1;
  if (top.manifests) {
    const children = top.manifests.filter(
      (m) => platforms === undefined || platforms.some((p) => matches(m.platform, p)),
    );
    if (children.length === 0)
      throw new Error(`no manifest for platform ${describe(platforms)} in ${ref.text}`);
    images = await Promise.all(children.map((child) => fetchManifest(ref, child.digest, deps)));
    manifests += children.length;
  }
  const wanted = new Map<string, number>();
  for (const image of images) {
    for (const d of [image.config, ...(image.layers ?? [])]) if (d) wanted.set(d.digest, d.size);
  }
  progress.total([...wanted.values()].reduce((s, n) => s + n, 0));
  progress.status('blobs');
  let bytes = 0;
  await Promise.all(
    [...wanted].map(async ([digest, size]) => {
      const key = `${ref.registry} ${digest}`;
      let fetch = deps.blobs.get(key);
      if (!fetch) {
        fetch = deps.limit(() => fetchBlob(ref, digest, deps.session, progress));
        deps.blobs.set(key, fetch);
      } else {
        void fetch.then(
          () => progress.done(size),
          () => undefined,
        );
      }
      // Read after the await: `bytes += await x` would add to a stale total.
      const fetched = await fetch;
      bytes += fetched;
    }),
  );
  progress.status('done');
  return { manifests, blobs: wanted.size, bytes };
}

async function fetchManifest(ref: ImageReference, reference: string, deps: PullDeps): Promise<ManifestJson> {
  return deps.limit(async () => {
    const res = await deps.session.get(
      ref.registry,
      ref.name,
      `/v2/${ref.name}/manifests/${reference}`,
      MANIFEST_ACCEPT,
    );
    const body = await readBody(res);
    if (reference.includes(':')) {
      const [algorithm, hex] = reference.split(':');
      if (
        createHash(algorithm ?? 'sha256')
          .update(body)
          .digest('hex') !== hex
      )
        throw new Error(`manifest ${reference} of ${ref.text} does not match its digest`);
    }
    try {
      return JSON.parse(body.toString('utf8')) as ManifestJson;
    } catch {
      throw new Error(`manifest ${reference} of ${ref.text} is not JSON`);
    }
  });
}

async function fetchBlob(
  ref: ImageReference,
  digest: string,
  session: RegistrySession,
  progress: PullProgress,
): Promise<number> {
  const res = await session.get(ref.registry, ref.name, `/v2/${ref.name}/blobs/${digest}`);
  const [algorithm, hex] = digest.split(':');
  const hash = createHash(algorithm ?? 'sha256');
  let size = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
    progress.done(chunk.length);
  }
  if (hash.digest('hex') !== hex) throw new Error(`blob ${digest} of ${ref.text} does not match its digest`);
  return size;
}

function matches(actual: Platform | undefined, wanted: Platform): boolean {
  if (!actual) return false;
  return (
    actual.os === wanted.os &&
    actual.architecture === wanted.architecture &&
    (wanted.variant === undefined || actual.variant === wanted.variant)
  );
}

function describe(platforms: Platform[] | undefined): string {
  return (platforms ?? []).map((p) => [p.os, p.architecture, p.variant].filter(Boolean).join('/')).join(',');
}
