// @drp/core mounted into a custom server: a pull-through mirror for containerd without any
// TLS interception (the original's users' #150). containerd's hosts.toml sends mirror
// requests as `/v2/<name>/...?ns=<registry>`; the registry comes from `ns`, the cache does the
// rest (blobs by digest, single upstream fetch, tag tiers, credentials). The daemon itself is
// such a mirror on its own port (docs/clients/mirror.md); this is the library way, for a server
// of your own.
//
//   node --import tsx examples/containerd-mirror.ts              (after `pnpm build`)
//
//   # /etc/containerd/certs.d/docker.io/hosts.toml on every node
//   server = "https://registry-1.docker.io"
//   [host."http://mirror.internal:5000"]
//     capabilities = ["pull", "resolve"]
//
// Same for ghcr.io, quay.io, registry.k8s.io: one directory per registry, the same mirror.
import http from 'node:http';
import { createRegistryCache, parseHostPort, type UpstreamTarget } from '@drp/core';

const ALLOWED = new Set(['docker.io', 'registry-1.docker.io', 'ghcr.io', 'quay.io', 'registry.k8s.io']);

const cache = await createRegistryCache({
  cacheDir: process.env.CACHE_DIR ?? '.drp/mirror-cache',
  maxSize: '50g',
  manifestCache: { enabled: true },
});

function targetOf(req: http.IncomingMessage): UpstreamTarget | undefined {
  const url = new URL(req.url ?? '/', 'http://mirror');
  const ns = url.searchParams.get('ns') ?? 'docker.io';
  if (!ALLOWED.has(ns)) return undefined; // an open mirror to anywhere is an open proxy
  const host = ns === 'docker.io' ? 'registry-1.docker.io' : ns;
  url.searchParams.delete('ns');
  req.url = `${url.pathname}${url.search}`; // upstream never sees containerd's ns parameter
  return parseHostPort(host);
}

const serve = cache.middleware(targetOf);
const server = http.createServer((req, res) => {
  serve(req, res, () => {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('unknown registry\n');
  });
});
// Long pulls and pushes must never be cut by a server-side timeout.
server.requestTimeout = 0;
server.listen(Number(process.env.PORT ?? 5000), () => {
  process.stdout.write(`containerd mirror on ${JSON.stringify(server.address())}\n`);
});

// Log one line per request from the cache's own outcome (nothing secret in it).
cache.events.on('request', (o) => {
  process.stdout.write(
    `${o.cacheStatus} ${o.status} ${o.method} ${o.registry}${o.path} ${o.bytes}B ${o.totalMs}ms\n`,
  );
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    server.close(() => void cache.close().then(() => process.exit(0)));
    server.closeIdleConnections();
  });
}
