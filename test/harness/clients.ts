// Wrappers around real registry clients. skopeo now; podman and ctr wrappers can follow the
// same pattern on top of run() (see process.ts).
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { type RunResult, run } from './process.ts';
import type { Credentials } from './registry.ts';

export interface ClientOptions {
  /** Extra environment (merged over process.env; undefined removes a variable). */
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
}

/** Runs `skopeo <args>` (with --insecure-policy); throws a RunError with the full stderr on failure. */
export function skopeo(args: string[], opts: ClientOptions = {}): Promise<RunResult> {
  return run('skopeo', ['--insecure-policy', ...args], {
    env: opts.env,
    timeoutMs: opts.timeoutMs ?? 120_000,
  });
}

/** Anything that names a registry: a Registry/Front object, or a 'host:port' string. */
export type RegistryEndpoint = string | { hostPort: string; certDir?: string };

/** An image in an OCI layout (from createImage/createIndex). Indexes are pushed with --all. */
export interface PushableImage {
  /** skopeo source reference, e.g. `oci:<layoutDir>:<ref>`. */
  source: string;
  children?: unknown[];
}

export interface PushOptions extends ClientOptions {
  /** 'user:pass' or {username,password}; null or omitted: anonymous. */
  creds?: string | Credentials | null;
  /** Directory with ca.crt for the destination (default: the endpoint's certDir). */
  certDir?: string;
  /** Fail instead of converting formats (default true, so pushed digests equal the layout's). */
  preserveDigests?: boolean;
}

export interface PushResult extends RunResult {
  /** 'host:port/repo:tag' as pushed. */
  reference: string;
}

function credsArg(creds: string | Credentials | null | undefined): string | undefined {
  if (!creds) return undefined;
  return typeof creds === 'string' ? creds : `${creds.username}:${creds.password}`;
}

function endpointOf(target: RegistryEndpoint): { hostPort: string; certDir?: string } {
  return typeof target === 'string' ? { hostPort: target } : target;
}

/** skopeo copy oci:LAYOUT:REF (image.source) docker://HOST:PORT/repoRef */
export async function pushImage(
  image: PushableImage,
  target: RegistryEndpoint,
  repoRef: string,
  opts: PushOptions = {},
): Promise<PushResult> {
  const ep = endpointOf(target);
  const reference = `${ep.hostPort}/${repoRef}`;
  const args = ['copy', '--quiet'];
  if (image.children) args.push('--all');
  if (opts.preserveDigests !== false) args.push('--preserve-digests');
  const certDir = opts.certDir ?? ep.certDir;
  if (certDir) args.push('--dest-cert-dir', certDir);
  const creds = credsArg(opts.creds);
  args.push(...(creds ? ['--dest-creds', creds] : ['--dest-no-creds']));
  args.push(image.source, `docker://${reference}`);
  return { ...(await skopeo(args, opts)), reference };
}

export interface PullOptions extends ClientOptions {
  /** Destination directory (must be empty or absent). */
  into: string;
  /** skopeo transport for the destination: 'dir' (default) or 'oci'. */
  format?: 'dir' | 'oci';
  creds?: string | Credentials | null;
  /** Directory with ca.crt for the source (default: the endpoint's certDir). */
  certDir?: string;
  /** Copy every platform of an index (--all); otherwise skopeo picks linux/amd64. */
  all?: boolean;
  /** Sets HTTPS_PROXY/https_proxy (and clears NO_PROXY) for this pull. */
  proxy?: string;
  /** Re-hash every pulled blob and check it against its name (default true). */
  verify?: boolean;
}

export interface PulledImage {
  manifestDigest: string;
  manifest: Buffer;
  mediaType: string;
  configDigest?: string;
  /** Layer digests in manifest order (as read back from disk when verify is on). */
  layers: string[];
}

export interface PullResult extends PulledImage {
  dir: string;
  reference: string;
  /** For an index pulled with `all`: every platform image. */
  children: PulledImage[];
  run: RunResult;
}

interface ManifestJson {
  mediaType?: string;
  config?: { digest: string };
  layers?: { digest: string }[];
  manifests?: { digest: string; mediaType?: string }[];
}

async function hashFile(path: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(path), h);
  return `sha256:${h.digest('hex')}`;
}

function sha256(b: Buffer): string {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

/** skopeo copy docker://HOST:PORT/repoRef dir:INTO (or oci:INTO:pulled) and reads the result back. */
export async function pullImage(
  source: RegistryEndpoint,
  repoRef: string,
  opts: PullOptions,
): Promise<PullResult> {
  const ep = endpointOf(source);
  const reference = `${ep.hostPort}/${repoRef}`;
  const format = opts.format ?? 'dir';
  await mkdir(opts.into, { recursive: true });
  const args = ['copy', '--quiet'];
  if (opts.all) args.push('--all');
  const certDir = opts.certDir ?? ep.certDir;
  if (certDir) args.push('--src-cert-dir', certDir);
  const creds = credsArg(opts.creds);
  args.push(...(creds ? ['--src-creds', creds] : ['--src-no-creds']));
  args.push(`docker://${reference}`, format === 'dir' ? `dir:${opts.into}` : `oci:${opts.into}:pulled`);
  const env = { ...opts.env };
  if (opts.proxy)
    Object.assign(env, { HTTPS_PROXY: opts.proxy, https_proxy: opts.proxy, NO_PROXY: '', no_proxy: '' });
  const result = await skopeo(args, { env, timeoutMs: opts.timeoutMs });

  const verify = opts.verify !== false;
  const blobFile = (digest: string) =>
    format === 'dir'
      ? join(opts.into, digest.split(':')[1] ?? '')
      : join(opts.into, 'blobs', ...digest.split(':'));

  const readImage = async (manifest: Buffer): Promise<PulledImage> => {
    const m = JSON.parse(manifest.toString('utf8')) as ManifestJson;
    const layers: string[] = [];
    for (const l of m.layers ?? []) {
      const actual = verify ? await hashFile(blobFile(l.digest)) : l.digest;
      if (actual !== l.digest) throw new Error(`pulled layer ${l.digest} hashes to ${actual}`);
      layers.push(actual);
    }
    if (verify && m.config) {
      const actual = await hashFile(blobFile(m.config.digest));
      if (actual !== m.config.digest) throw new Error(`pulled config ${m.config.digest} hashes to ${actual}`);
    }
    return {
      manifestDigest: sha256(manifest),
      manifest,
      mediaType: m.mediaType ?? '',
      configDigest: m.config?.digest,
      layers,
    };
  };

  let top: Buffer;
  if (format === 'dir') {
    top = await readFile(join(opts.into, 'manifest.json'));
  } else {
    const index = JSON.parse(await readFile(join(opts.into, 'index.json'), 'utf8')) as ManifestJson;
    const desc = index.manifests?.at(-1);
    if (!desc) throw new Error(`no manifest in ${opts.into}/index.json`);
    top = await readFile(blobFile(desc.digest));
  }
  const image = await readImage(top);
  const children: PulledImage[] = [];
  const parsed = JSON.parse(top.toString('utf8')) as ManifestJson;
  if (opts.all && parsed.manifests) {
    for (const child of parsed.manifests) {
      const file =
        format === 'dir'
          ? join(opts.into, `${child.digest.split(':')[1]}.manifest.json`)
          : blobFile(child.digest);
      children.push(await readImage(await readFile(file)));
    }
  }
  return { ...image, dir: opts.into, reference, children, run: result };
}
