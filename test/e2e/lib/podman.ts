// podman with its own storage (vfs), run root, temp dir and registries.conf, so a test never
// touches or reads the machine's /var/lib/containers (images, blob-info cache) and tests do
// not see each other's images.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Harness, RunResult } from '../../harness/index.ts';

export interface PodmanOptions {
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
  /** Reject on failure (default true). */
  check?: boolean;
}

export interface TlsAndProxy {
  /** HTTPS_PROXY for this command (NO_PROXY cleared). */
  proxy?: string;
  /** Directory with ca.crt trusted for the registry (podman --cert-dir). */
  certDir?: string;
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
}

export interface PodmanImage {
  /** Image ID (= config digest hex). */
  id: string;
  /** The digest podman recorded for the pulled reference (manifest or index digest). */
  digest: string;
  repoDigests: string[];
}

export interface Podman {
  readonly root: string;
  /** A skopeo reference into this podman's storage, e.g. for `skopeo copy oci:... <ref>`. */
  storageRef(name: string): string;
  run(args: string[], opts?: PodmanOptions): Promise<RunResult>;
  /** `podman pull ref` (docker:// transport implied for host/repo:tag). */
  pull(ref: string, opts?: TlsAndProxy): Promise<RunResult>;
  /** `podman push local docker://dest`; returns the pushed manifest digest (--digestfile). */
  push(local: string, dest: string, opts?: TlsAndProxy & { creds?: string }): Promise<string>;
  inspect(ref: string): Promise<PodmanImage>;
  /** `podman rmi --all --force` then `podman image prune --all --force`: nothing left locally. */
  prune(): Promise<void>;
  /** Number of images in local storage. */
  count(): Promise<number>;
}

export function proxyEnv(proxy: string | undefined): Record<string, string> {
  return proxy ? { HTTPS_PROXY: proxy, https_proxy: proxy, NO_PROXY: '', no_proxy: '' } : {};
}

/** A podman whose every piece of state lives under a fresh harness temp dir. */
export async function createPodman(h: Harness): Promise<Podman> {
  const base = h.tempDir('podman');
  const root = join(base, 'root');
  const runroot = join(base, 'runroot');
  const tmp = h.tempDir('podman-tmp');
  const registriesConf = join(base, 'registries.conf');
  const containersConf = join(base, 'containers.conf');
  await writeFile(registriesConf, 'unqualified-search-registries = []\nshort-name-mode = "disabled"\n');
  await writeFile(containersConf, '[engine]\nevents_logger = "file"\ncgroup_manager = "cgroupfs"\n');
  const baseEnv = {
    CONTAINERS_REGISTRIES_CONF: registriesConf,
    REGISTRIES_CONFIG_PATH: registriesConf,
    CONTAINERS_CONF: containersConf,
    TMPDIR: tmp,
    XDG_RUNTIME_DIR: join(base, 'xdg-run'),
    XDG_CONFIG_HOME: join(base, 'xdg-config'),
    XDG_DATA_HOME: join(base, 'xdg-data'),
  };
  const global = [
    '--storage-driver',
    'vfs',
    '--root',
    root,
    '--runroot',
    runroot,
    '--tmpdir',
    join(base, 'libpod-tmp'),
    '--log-level',
    'error',
  ];
  const run = (args: string[], opts: PodmanOptions = {}) =>
    h.run('podman', [...global, ...args], {
      env: { ...baseEnv, ...opts.env },
      timeoutMs: opts.timeoutMs ?? 180_000,
      check: opts.check,
    });

  const tlsArgs = (o: TlsAndProxy) => (o.certDir ? ['--cert-dir', o.certDir] : []);

  return {
    root,
    storageRef: (name) => `containers-storage:[vfs@${root}+${runroot}]${name}`,
    run,
    pull: (ref, o = {}) =>
      run(['pull', '--quiet', ...tlsArgs(o), ref], {
        env: { ...proxyEnv(o.proxy), ...o.env },
        timeoutMs: o.timeoutMs,
      }),
    async push(local, dest, o = {}) {
      const digestFile = join(h.tempDir('podman-digest'), 'digest');
      await run(
        [
          'push',
          '--quiet',
          ...tlsArgs(o),
          ...(o.creds ? ['--creds', o.creds] : []),
          '--digestfile',
          digestFile,
          local,
          `docker://${dest}`,
        ],
        { env: { ...proxyEnv(o.proxy), ...o.env }, timeoutMs: o.timeoutMs },
      );
      return (await readFile(digestFile, 'utf8')).trim();
    },
    async inspect(ref) {
      const out = await run(['image', 'inspect', ref]);
      const [parsed] = JSON.parse(out.stdout) as {
        Id: string;
        Digest: string;
        RepoDigests: string[] | null;
      }[];
      if (!parsed) throw new Error(`podman image inspect ${ref}: no image`);
      return { id: parsed.Id, digest: parsed.Digest, repoDigests: parsed.RepoDigests ?? [] };
    },
    async prune() {
      await run(['rmi', '--all', '--force']);
      await run(['image', 'prune', '--all', '--force']);
    },
    async count() {
      const out = await run(['images', '--quiet', '--noheading']);
      return out.stdout.split('\n').filter((l) => l.trim() !== '').length;
    },
  };
}
