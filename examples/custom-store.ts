// The cache with a store of your own: the in-memory LRU store of examples/lru-store.ts (e.g. for
// a CI runner with a slow disk) in place of the default on-disk one. Any store that passes
// `contentStoreConformance` from `@drp/core/testing` works; test/examples/custom-store.test.ts
// runs the suite on this one and pulls through this mirror from a real registry.
//
//   UPSTREAM=ghcr.io PORT=5000 node --import tsx examples/custom-store.ts   (after `pnpm build`)
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  createRegistryCache,
  parseHostPort,
  type RegistryCacheOptions,
  type UpstreamTarget,
} from '@drp/core';
import { LruStore } from './lru-store.ts';

/** A pull-through mirror of `target` on http://127.0.0.1:<port>, its content in memory. */
export async function startLruMirror(target: UpstreamTarget, options: Partial<RegistryCacheOptions> = {}) {
  const store = new LruStore(256 * 2 ** 20);
  // cacheDir still holds the small things (tag index, auth key); content goes to the store.
  const cache = await createRegistryCache({ cacheDir: '.drp/lru-cache', ...options, store });
  const server = http.createServer((req, res) => void cache.handle(req, res, target));
  server.requestTimeout = 0; // long pulls must never be cut by a server-side timeout
  await new Promise<void>((resolve) => server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', resolve));
  const close = async () => {
    server.closeAllConnections();
    server.close();
    await cache.close();
  };
  return { port: (server.address() as AddressInfo).port, store, cache, close };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const upstream = process.env.UPSTREAM ?? 'ghcr.io';
  const target = parseHostPort(upstream);
  if (!target) throw new Error(`UPSTREAM: not a host[:port]: ${upstream}`);
  const mirror = await startLruMirror(target);
  process.stdout.write(`mirror of ${upstream} on http://127.0.0.1:${mirror.port}\n`);
}
