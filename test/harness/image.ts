// Writes OCI image layouts (oci-layout, index.json, blobs/sha256/...) with random,
// incompressible layers, for pushing to a real registry with skopeo.
//
// Each layer is a valid tar holding one file of random bytes, streamed through gzip and two
// sha256 hashes straight to disk, so a 200 MB image costs ~1 s and little memory.
// Random bytes come from AES-CTR over zeros (about 1 GB/s, far faster than randomBytes);
// gzip defaults to level 0 ("store" blocks) because deflate level 1 on random data runs at
// only ~25 MB/s and could not shrink it anyway.
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { copyFile, link, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';

export const MediaTypes = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export interface Layer extends Descriptor {
  /** sha256 of the uncompressed tar (the config's rootfs.diff_ids entry). */
  diffId: string;
  /** Bytes of random payload in the layer's single file. */
  payloadSize: number;
  /** The blob file on disk (reusable in another layout via `layers: [layer]`). */
  path: string;
}

export interface ImageInfo {
  layoutDir: string;
  /** The tag in the layout's index.json, for `oci:<layoutDir>:<ref>`. */
  ref: string;
  /**
   * What skopeo copies from: `oci:<layoutDir>:<ref>`, or for Docker-format images (which
   * skopeo's oci: transport refuses) `dir:<layoutDir>/docker-<ref>`.
   */
  source: string;
  manifestDigest: string;
  /** The exact manifest bytes (their sha256 is manifestDigest). */
  manifest: Buffer;
  mediaType: string;
  config: Descriptor & { data: Buffer };
  layers: Layer[];
  platform: Platform;
  /** Manifest + config + layers, in bytes. */
  totalSize: number;
}

export interface IndexInfo {
  layoutDir: string;
  ref: string;
  /** skopeo source reference, as in ImageInfo. */
  source: string;
  /** Digest of the image index / manifest list. */
  manifestDigest: string;
  /** Alias of manifestDigest. */
  digest: string;
  manifest: Buffer;
  mediaType: string;
  /** One image per platform, in the order given; each is also tagged `<ref>-<os>-<arch>[-<variant>]`. */
  children: ImageInfo[];
  /** Index + every child's totalSize. */
  totalSize: number;
}

export interface ImageOptions {
  /**
   * One entry per layer: a payload size in bytes (a fresh random layer), or a Layer returned
   * by an earlier call (reused byte for byte, to build images that share layers).
   */
  layers: (number | Layer)[];
  platform?: Platform;
  /** Tag in index.json (default "latest"). An existing entry with that tag is replaced. */
  tag?: string;
  /**
   * OCI media types (default) or Docker schema 2 ones. Docker images are also written as a
   * skopeo `dir:` directory (see ImageInfo.source) and are not tagged in index.json.
   */
  format?: 'oci' | 'docker';
  /** 'gzip' (default) or 'none' (plain tar layers; OCI format only). */
  compression?: 'gzip' | 'none';
  /** zlib level for gzip layers, default 0 (stored blocks: fast, still valid gzip). */
  gzipLevel?: number;
  /** Extra labels in the image config (also a cheap way to vary a config). */
  labels?: Record<string, string>;
}

const ANNOTATION_REF = 'org.opencontainers.image.ref.name';
const CHUNK = 1 << 20;
const MTIME = 1_700_000_000;

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** Path of a blob inside an OCI layout. */
export function blobPath(layoutDir: string, digest: string): string {
  const [alg, hex] = digest.split(':');
  return join(layoutDir, 'blobs', alg ?? 'sha256', hex ?? '');
}

function tarHeader(name: string, size: number): Buffer {
  const h = Buffer.alloc(512);
  const text = (s: string, off: number, len: number) => h.write(s, off, len, 'ascii');
  const octal = (n: number, off: number, len: number) =>
    text(`${n.toString(8).padStart(len - 1, '0')}\0`, off, len);
  text(name, 0, 100);
  octal(0o644, 100, 8); // mode
  octal(0, 108, 8); // uid
  octal(0, 116, 8); // gid
  octal(size, 124, 12); // 11 octal digits: up to 8 GiB
  octal(MTIME, 136, 12);
  h.fill(' ', 148, 156); // the checksum is computed with its own field as spaces
  text('0', 156, 1); // regular file
  text('ustar\0', 257, 6);
  text('00', 263, 2);
  text('root', 265, 32);
  text('root', 297, 32);
  let sum = 0;
  for (const b of h) sum += b;
  text(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
  return h;
}

/** A tar stream with one file of `size` random bytes. */
function randomTar(name: string, size: number): Readable {
  const cipher = createCipheriv('aes-128-ctr', randomBytes(16), randomBytes(16));
  const zeros = Buffer.alloc(CHUNK);
  const pad = (512 - (size % 512)) % 512;
  let remaining = size;
  let stage: 'header' | 'data' | 'trailer' | 'done' = 'header';
  return new Readable({
    highWaterMark: CHUNK,
    read() {
      if (stage === 'header') {
        stage = 'data';
        this.push(tarHeader(name, size));
      } else if (stage === 'data') {
        if (remaining === 0) {
          stage = 'trailer';
          this.push(Buffer.alloc(pad + 1024)); // padding + two zero blocks (end of archive)
          return;
        }
        const n = Math.min(remaining, CHUNK);
        remaining -= n;
        this.push(cipher.update(n === CHUNK ? zeros : zeros.subarray(0, n)));
      } else if (stage === 'trailer') {
        stage = 'done';
        this.push(null);
      }
    },
  });
}

class Hasher extends Transform {
  private readonly hash = createHash('sha256');
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    cb(null, chunk);
  }
  digest(): string {
    return `sha256:${this.hash.digest('hex')}`;
  }
}

async function ensureLayout(layoutDir: string): Promise<void> {
  await mkdir(join(layoutDir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(layoutDir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
}

async function writeBlob(layoutDir: string, data: Buffer): Promise<string> {
  const digest = sha256(data);
  await writeFile(blobPath(layoutDir, digest), data);
  return digest;
}

async function writeRandomLayer(
  layoutDir: string,
  size: number,
  mediaType: string,
  gzip: boolean,
  level: number,
): Promise<Layer> {
  const tmp = join(layoutDir, 'blobs', `.tmp-${randomBytes(8).toString('hex')}`);
  const tarHash = new Hasher();
  const blobHash = new Hasher();
  const src = randomTar(`random-${randomBytes(6).toString('hex')}.bin`, size);
  try {
    if (gzip) await pipeline(src, tarHash, createGzip({ level }), blobHash, createWriteStream(tmp));
    else await pipeline(src, tarHash, blobHash, createWriteStream(tmp));
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  const digest = blobHash.digest();
  const path = blobPath(layoutDir, digest);
  await rename(tmp, path);
  return { mediaType, digest, size: blobHash.bytes, diffId: tarHash.digest(), payloadSize: size, path };
}

async function reuseLayer(layoutDir: string, layer: Layer): Promise<Layer> {
  const path = blobPath(layoutDir, layer.digest);
  if (path !== layer.path) {
    const exists = await stat(path).then(
      () => true,
      () => false,
    );
    if (!exists) await link(layer.path, path).catch(() => copyFile(layer.path, path));
  }
  return { ...layer, path };
}

// index.json is read-modify-written; serialise per layout so concurrent calls don't lose tags.
const locks = new Map<string, Promise<unknown>>();
function withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const prev = locks.get(key) ?? Promise.resolve();
  const next = prev.then(fn, fn);
  locks.set(
    key,
    next.catch(() => undefined),
  );
  return next;
}

interface IndexEntry extends Descriptor {
  annotations?: Record<string, string>;
  platform?: Platform;
}

async function tagInLayout(layoutDir: string, entry: IndexEntry, tag: string): Promise<void> {
  await withLock(layoutDir, async () => {
    const file = join(layoutDir, 'index.json');
    let manifests: IndexEntry[] = [];
    try {
      const parsed = JSON.parse(await readFile(file, 'utf8')) as { manifests?: IndexEntry[] };
      manifests = parsed.manifests ?? [];
    } catch {
      // no index yet
    }
    manifests = manifests.filter((m) => m.annotations?.[ANNOTATION_REF] !== tag);
    manifests.push({ ...entry, annotations: { ...entry.annotations, [ANNOTATION_REF]: tag } });
    await writeFile(file, JSON.stringify({ schemaVersion: 2, manifests }, null, 2));
  });
}

async function buildImage(layoutDir: string, opts: ImageOptions): Promise<ImageInfo> {
  const format = opts.format ?? 'oci';
  const gzip = (opts.compression ?? 'gzip') === 'gzip';
  if (format === 'docker' && !gzip) throw new Error('docker format needs gzip layers');
  const platform: Platform = opts.platform ?? { os: 'linux', architecture: 'amd64' };
  const layerType =
    format === 'docker' ? MediaTypes.dockerLayerGzip : gzip ? MediaTypes.ociLayerGzip : MediaTypes.ociLayer;
  await ensureLayout(layoutDir);

  const layers = await Promise.all(
    opts.layers.map((l) =>
      typeof l === 'number'
        ? writeRandomLayer(layoutDir, l, layerType, gzip, opts.gzipLevel ?? 0)
        : reuseLayer(layoutDir, l),
    ),
  );

  const configData = Buffer.from(
    JSON.stringify({
      created: new Date(MTIME * 1000).toISOString(),
      architecture: platform.architecture,
      os: platform.os,
      ...(platform.variant ? { variant: platform.variant } : {}),
      config: { Labels: { 'drp.test': 'true', ...opts.labels } },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
      history: layers.map(() => ({
        created: new Date(MTIME * 1000).toISOString(),
        created_by: 'drp test harness',
      })),
    }),
  );
  const configType = format === 'docker' ? MediaTypes.dockerConfig : MediaTypes.ociConfig;
  const config = {
    mediaType: configType,
    digest: await writeBlob(layoutDir, configData),
    size: configData.length,
  };

  const mediaType = format === 'docker' ? MediaTypes.dockerManifest : MediaTypes.ociManifest;
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      config,
      layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
    }),
  );
  const manifestDigest = await writeBlob(layoutDir, manifest);
  return {
    layoutDir,
    ref: opts.tag ?? 'latest',
    source: `oci:${layoutDir}:${opts.tag ?? 'latest'}`,
    manifestDigest,
    manifest,
    mediaType,
    config: { ...config, data: configData },
    layers,
    platform,
    totalSize: manifest.length + configData.length + layers.reduce((s, l) => s + l.size, 0),
  };
}

/** Writes a single-platform image into the OCI layout at `layoutDir` (created or extended). */
export async function createImage(layoutDir: string, opts: ImageOptions): Promise<ImageInfo> {
  const image = await buildImage(layoutDir, opts);
  if (opts.format === 'docker') {
    const dir = join(layoutDir, `docker-${image.ref}`);
    await writeDirTransport(layoutDir, dir, image.manifest, [
      image.config.digest,
      ...image.layers.map((l) => l.digest),
    ]);
    return { ...image, source: `dir:${dir}` };
  }
  await tagInLayout(
    layoutDir,
    {
      mediaType: image.mediaType,
      digest: image.manifestDigest,
      size: image.manifest.length,
      platform: image.platform,
    },
    image.ref,
  );
  return image;
}

/**
 * skopeo's `dir:` transport: manifest.json, a version file, blobs named by their hex digest
 * and, for a manifest list, each instance as `<hex>.manifest.json`. Blobs are hard links.
 */
async function writeDirTransport(
  layoutDir: string,
  dir: string,
  manifest: Buffer,
  blobs: string[],
  instances: Buffer[] = [],
): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'version'), 'Directory Transport Version: 1.1\n');
  await writeFile(join(dir, 'manifest.json'), manifest);
  for (const m of instances) await writeFile(join(dir, `${sha256(m).slice(7)}.manifest.json`), m);
  for (const digest of new Set(blobs)) {
    const from = blobPath(layoutDir, digest);
    const to = join(dir, digest.slice(7));
    await link(from, to).catch(() => copyFile(from, to));
  }
}

export function platformTag(tag: string, p: Platform): string {
  return [tag, p.os, p.architecture, p.variant].filter(Boolean).join('-');
}

export interface IndexOptions extends Omit<ImageOptions, 'layers' | 'platform'> {}

/**
 * Writes a multi-platform image: one image per platform (each with fresh random layers of
 * `layerSizes`) and an OCI image index (or Docker manifest list) tagged `tag`.
 */
export async function createIndex(
  layoutDir: string,
  platforms: Platform[],
  layerSizes: number[],
  opts: IndexOptions = {},
): Promise<IndexInfo> {
  const tag = opts.tag ?? 'latest';
  const children: ImageInfo[] = [];
  for (const platform of platforms) {
    const childTag = platformTag(tag, platform);
    children.push(await createImage(layoutDir, { ...opts, layers: layerSizes, platform, tag: childTag }));
  }
  const mediaType = opts.format === 'docker' ? MediaTypes.dockerManifestList : MediaTypes.ociIndex;
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      manifests: children.map((c) => ({
        mediaType: c.mediaType,
        digest: c.manifestDigest,
        size: c.manifest.length,
        platform: c.platform,
      })),
    }),
  );
  const digest = await writeBlob(layoutDir, manifest);
  let source = `oci:${layoutDir}:${tag}`;
  if (opts.format === 'docker') {
    const dir = join(layoutDir, `docker-${tag}`);
    const blobs = children.flatMap((c) => [c.config.digest, ...c.layers.map((l) => l.digest)]);
    await writeDirTransport(
      layoutDir,
      dir,
      manifest,
      blobs,
      children.map((c) => c.manifest),
    );
    source = `dir:${dir}`;
  } else {
    await tagInLayout(layoutDir, { mediaType, digest, size: manifest.length }, tag);
  }
  return {
    layoutDir,
    ref: tag,
    source,
    manifestDigest: digest,
    digest,
    manifest,
    mediaType,
    children,
    totalSize: manifest.length + children.reduce((s, c) => s + c.totalSize, 0),
  };
}
