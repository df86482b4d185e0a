// A private containerd daemon (own root, state, sockets; CRI disabled) and a `ctr` wrapper.
// ctr does the pull client-side, so HTTPS_PROXY is taken from ctr's own environment.
import { access, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Daemon, Harness, RunResult } from '../../harness/index.ts';
import { proxyEnv } from './podman.ts';

export interface CtrImage {
  ref: string;
  /** The digest of what the reference resolved to (manifest or index). */
  digest: string;
  mediaType: string;
}

export interface PullViaCtr {
  proxy?: string;
  /** PEM file trusted for the registry (ctr --tlscacert). */
  caFile?: string;
  allPlatforms?: boolean;
  /** `user:password` for the registry (ctr --user). */
  user?: string;
  timeoutMs?: number;
}

export interface Containerd {
  readonly daemon: Daemon;
  readonly address: string;
  readonly root: string;
  /** `ctr --address SOCK --namespace drp-e2e <args>` */
  ctr(
    args: string[],
    opts?: { env?: Record<string, string | undefined>; timeoutMs?: number },
  ): Promise<RunResult>;
  /** `ctr images pull --snapshotter native ...`. */
  pull(ref: string, opts?: PullViaCtr): Promise<RunResult>;
  image(ref: string): Promise<CtrImage>;
  /** Digests of every blob in the content store. */
  content(): Promise<Set<string>>;
  /** `ctr images rm` every image and `ctr content rm` every blob. */
  removeAll(): Promise<void>;
}

const NAMESPACE = 'drp-e2e';

export async function startContainerd(h: Harness): Promise<Containerd> {
  const dir = h.tempDir('containerd');
  const root = join(dir, 'root');
  const state = join(dir, 'state');
  const address = join(dir, 'containerd.sock');
  const config = join(dir, 'config.toml');
  await writeFile(
    config,
    [
      'version = 2',
      `root = "${root}"`,
      `state = "${state}"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = "${address}"`,
      '[ttrpc]',
      `  address = "${join(dir, 'containerd.sock.ttrpc')}"`,
      '[debug]',
      '  address = ""',
      '[metrics]',
      '  address = ""',
      '',
    ].join('\n'),
  );
  const daemon = h.spawn('containerd', ['--config', config, '--log-level', 'warn'], {
    env: { HTTPS_PROXY: undefined, https_proxy: undefined, HTTP_PROXY: undefined, http_proxy: undefined },
  });
  const ctr = (args: string[], opts: { env?: Record<string, string | undefined>; timeoutMs?: number } = {}) =>
    h.run('ctr', ['--address', address, '--namespace', NAMESPACE, ...args], {
      env: opts.env,
      timeoutMs: opts.timeoutMs ?? 180_000,
    });
  // Ready when the socket exists and ctr can talk to it.
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (!daemon.running()) throw new Error(`containerd exited:\n${daemon.output()}`);
    const ready = await access(address).then(
      () =>
        ctr(['version'], { timeoutMs: 5000 }).then(
          () => true,
          () => false,
        ),
      () => false,
    );
    if (ready) break;
    if (Date.now() > deadline) throw new Error(`containerd did not start:\n${daemon.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }

  const list = async (): Promise<CtrImage[]> => {
    const out = await ctr(['images', 'ls']);
    return out.stdout
      .split('\n')
      .slice(1)
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f.length >= 3)
      .map(([ref = '', mediaType = '', digest = '']) => ({ ref, mediaType, digest }));
  };

  const content = async () => {
    const out = await ctr(['content', 'ls', '--quiet']);
    return new Set(
      out.stdout
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean),
    );
  };

  return {
    daemon,
    address,
    root,
    ctr,
    pull(ref, o = {}) {
      const args = ['images', 'pull', '--snapshotter', 'native'];
      if (o.caFile) args.push('--tlscacert', o.caFile);
      if (o.allPlatforms) args.push('--all-platforms');
      if (o.user) args.push('--user', o.user);
      args.push(ref);
      return ctr(args, {
        env: proxyEnv(o.proxy),
        timeoutMs: o.timeoutMs,
      });
    },
    async image(ref) {
      const found = (await list()).find((i) => i.ref === ref);
      if (!found) throw new Error(`ctr has no image ${ref}: ${JSON.stringify(await list())}`);
      return found;
    },
    content,
    async removeAll() {
      const images = await list();
      if (images.length > 0) await ctr(['images', 'rm', '--sync', ...images.map((i) => i.ref)]);
      const blobs = [...(await content())];
      if (blobs.length > 0) await ctr(['content', 'rm', ...blobs]);
    },
  };
}
