// Replicas for the scale-out tests: several drp-server daemons on one CACHE_DIR and CA_DIR
// behind haproxy, a real registry upstream behind a harness front that can make a fill slow.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Front, Harness, ImageInfo } from '../harness/index.ts';
import { type RunningDaemon, startDaemon } from '../integration/daemon-lib.ts';
import { type Balancer, startHaproxy } from './haproxy.ts';
import { curlVia, type Fetched } from './lib.ts';

export interface Replicas {
  replicas: RunningDaemon[];
  balancer: Balancer;
  front: Front;
  cacheDir: string;
  caFile: string;
  fetch(repo: string, digest: string): Promise<Fetched>;
}

/** `n` daemons on one cache and CA directory, started one after the other, behind haproxy. */
export async function replicasBehindHaproxy(
  h: Harness,
  n: number,
  front: Front,
  env: Record<string, string> = {},
): Promise<Replicas> {
  const ca = await h.testCA();
  const cacheDir = h.tempDir('cache');
  const caDir = h.tempDir('ca');
  const replicas: RunningDaemon[] = [];
  for (let i = 0; i < n; i++) {
    replicas.push(
      await startDaemon(h, {
        REGISTRIES: front.namedHostPort,
        UPSTREAM_MAPPINGS: 'registry.test=127.0.0.1',
        UPSTREAM_CA_FILE: ca.certPath,
        CACHE_DIR: cacheDir,
        CA_DIR: caDir,
        ...env,
      }),
    );
  }
  // One CA directory: every replica serves the same /ca.crt.
  assert.ok(replicas.every((r) => r.caPem === replicas[0]!.caPem));
  const balancer = await startHaproxy(
    h,
    replicas.map((r) => r.port),
  );
  const caFile = join(replicas[0]!.certDir, 'ca.crt');
  return {
    replicas,
    balancer,
    front,
    cacheDir,
    caFile,
    fetch: (repo, digest) =>
      curlVia(h, balancer.url, caFile, `https://${front.namedHostPort}/v2/${repo}/blobs/${digest}`),
  };
}

export async function imageOnRegistry(
  h: Harness,
  layers: number[],
): Promise<{ image: ImageInfo; front: Front; stall: Set<string> }> {
  const registry = await h.startRegistry({ names: ['registry.test'] });
  const image = await h.createImage({ layers });
  await registry.push(image, 'team/app:v1');
  const stall = new Set<string>();
  const front = await h.startFront({
    upstream: registry,
    names: ['registry.test'],
    onRequest: (req, _res, forward) => {
      const digest = /\/blobs\/(sha256:[0-9a-f]{64})/.exec(req.url ?? '')?.[1];
      // The leader's fill takes seconds: 512 KiB, then a 6 s pause, then the rest.
      if (digest && stall.has(digest)) return forward({ stallAfter: { bytes: 512 * 1024, ms: 6000 } });
      return forward();
    },
  });
  await front.counter.settle();
  front.counter.reset();
  return { image, front, stall };
}

/** The pid of the replica holding a connection to the upstream front (the fill's leader). */
export async function leaderPid(
  h: Harness,
  frontPort: number,
  pids: readonly number[],
): Promise<number | undefined> {
  const ss = await h.run('ss', ['-Htnp', 'state', 'established', 'dst', `127.0.0.1:${frontPort}`], {
    check: false,
  });
  for (const match of ss.stdout.matchAll(/pid=(\d+)/g)) {
    const pid = Number(match[1]);
    if (pids.includes(pid)) return pid;
  }
  return undefined;
}
