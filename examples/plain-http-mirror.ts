// @drp/core mounted in a plain `http.createServer`: a pull-through mirror of ONE upstream
// registry. Every `/v2/...` request is served by the cache for that registry (blobs by digest
// from the store, one upstream fetch per blob, tag manifests by tier, stale answers while the
// upstream fails); anything else is a 404. No TLS, no interception: clients that allow an
// insecure mirror (containerd's hosts.toml, skopeo --src-tls-verify=false, podman's
// registries.conf `insecure = true`) pull through it as if it were the registry.
//
//   UPSTREAM=ghcr.io PORT=5000 node --import tsx examples/plain-http-mirror.ts   (after `pnpm build`)
//   skopeo copy --src-tls-verify=false docker://127.0.0.1:5000/owner/image:tag dir:/tmp/image
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { createRegistryCache, parseHostPort, type RegistryCache, type Step } from '@drp/core';

export interface MirrorOptions {
  /** The one registry mirrored, `host[:port]` (443 unless given). */
  readonly upstream: string;
  readonly cacheDir: string;
  /** Steps between route and store (examples/deny-audit-step.ts). */
  readonly use?: readonly Step[];
  /** Connect to this address instead of resolving the upstream's name (tests: 127.0.0.1). */
  readonly upstreamAddress?: string;
  /** Extra CAs the upstream's certificate may chain to (PEM). */
  readonly caCertificates?: readonly string[];
}

export interface Mirror {
  readonly server: http.Server;
  readonly cache: RegistryCache;
  /** Stops accepting, cuts open connections, closes the cache. */
  close(): Promise<void>;
}

export async function createMirror(options: MirrorOptions): Promise<Mirror> {
  const target = parseHostPort(options.upstream, 443);
  if (!target) throw new Error(`UPSTREAM is not host[:port]: ${options.upstream}`);
  const mappings = options.upstreamAddress ? { [target.host]: options.upstreamAddress } : {};
  const cache = await createRegistryCache({
    cacheDir: options.cacheDir,
    ...(options.use ? { use: options.use } : {}),
    upstream: { mappings, caCertificates: [...(options.caCertificates ?? [])] },
  });
  const server = http.createServer((req, res) => {
    if (!/^\/v2(\/|$|\?)/.test(req.url ?? '')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not a registry path\n');
      return;
    }
    void cache.handle(req, res, target);
  });
  server.requestTimeout = 0; // a long pull must never be cut by a server-side timeout
  return {
    server,
    cache,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await cache.close();
    },
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const mirror = await createMirror({
    upstream: process.env.UPSTREAM ?? 'registry-1.docker.io',
    cacheDir: process.env.CACHE_DIR ?? '.drp/plain-mirror-cache',
  });
  mirror.server.listen(Number(process.env.PORT ?? 5000), () => {
    const { port } = mirror.server.address() as AddressInfo;
    process.stdout.write(`mirror of ${process.env.UPSTREAM ?? 'registry-1.docker.io'} on :${port}\n`);
  });
  process.once('SIGTERM', () => void mirror.close());
}
