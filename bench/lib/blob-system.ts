// Starts bench/lib/blob-server.mjs (the @drp/core middleware in an HTTPS server) as a child
// process owned by the harness, with a fresh cache directory, in front of the upstream registry.
import { join } from 'node:path';
import { freePort, type Harness, httpsRequest, type Registry } from '../../test/harness/index.ts';
import { benchNode } from '../references/node.ts';
import { REPO_ROOT, type System } from '../references/systems.ts';

export interface BlobSystem extends System {
  stats(): Promise<{ fills: number; hits: number; misses: number; entries: number }>;
}

export async function startBlobServer(h: Harness, upstream: Registry): Promise<BlobSystem> {
  const ca = await h.testCA();
  const cert = await ca.issue(['localhost', '127.0.0.1']);
  const port = await freePort();
  const cacheDir = h.tempDir('drp-core-cache');
  const daemon = h.spawn(benchNode(), [join(REPO_ROOT, 'bench/lib/blob-server.mjs')], {
    cwd: REPO_ROOT,
    env: {
      PORT: String(port),
      CACHE_DIR: cacheDir,
      CERT: cert.certPath,
      KEY: cert.keyPath,
      UPSTREAM_HOST: 'registry.test',
      UPSTREAM_PORT: String(upstream.port),
      UPSTREAM_ADDRESS: '127.0.0.1',
      UPSTREAM_CA: ca.certPath,
      DEBUG: undefined,
      HTTPS_PROXY: undefined,
      https_proxy: undefined,
    },
    keepLines: 50,
  });
  const url = `https://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (!daemon.running()) throw new Error(`blob server exited:\n${daemon.output()}`);
    try {
      const r = await httpsRequest(`${url}/__stats`, { ca: ca.certPem, timeoutMs: 1000 });
      if (r.status === 200) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`blob server not ready:\n${daemon.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    name: 'drp',
    pid: daemon.pid,
    curl: (path) => ['--cacert', ca.certPath, `${url}${path}`],
    skopeo: (repoRef) => ({ ref: `127.0.0.1:${port}/${repoRef}`, certDir: ca.certDir, env: {} }),
    info: { engine: '@drp/core middleware in node:https', cacheDir },
    async stats() {
      const r = await httpsRequest(`${url}/__stats`, { ca: ca.certPem });
      return r.json();
    },
    close: () => daemon.stop(),
  };
}
