// Mounts a registry cache in a plain HTTP server for one upstream target, and a tiny client to
// drive it, for the core's unit tests (no TLS, no daemon).
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type CacheEventMap,
  createRegistryCache,
  type RegistryCache,
  type RegistryCacheOptions,
  type RequestOutcome,
} from '../../packages/core/src/index.ts';

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  json<T = unknown>(): T;
}

export interface Driven {
  cache: RegistryCache;
  cacheDir: string;
  port: number;
  outcomes: RequestOutcome[];
  stale: CacheEventMap['stale'][0][];
  /** Sends a request through the cache; `body` is streamed as given. */
  send(
    method: string,
    path: string,
    headers?: Record<string, string>,
    body?: Buffer | string,
  ): Promise<Reply>;
  close(): Promise<void>;
}

export interface DriveOptions extends Partial<RegistryCacheOptions> {
  target: { host: string; port: number; protocol?: 'http' | 'https' };
  /** Reuse a cache directory (restart tests). */
  cacheDir?: string;
}

export async function drive(options: DriveOptions): Promise<Driven> {
  const ownDir = options.cacheDir === undefined;
  const cacheDir = options.cacheDir ?? mkdtempSync(join(tmpdir(), 'drp-core-test-'));
  const { target, ...rest } = options;
  const cache = await createRegistryCache({ ...rest, cacheDir });
  const outcomes: RequestOutcome[] = [];
  const stale: CacheEventMap['stale'][0][] = [];
  cache.events.on('request', (o) => outcomes.push(o));
  cache.events.on('stale', (s) => stale.push(s));
  const server: Server = createServer((req, res) => {
    void cache.handle(req, res, target);
  });
  server.requestTimeout = 0;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  const send: Driven['send'] = (method, path, headers = {}, body) =>
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const data = Buffer.concat(chunks);
          // The access-log event fires after the response; let it land before the caller looks.
          setImmediate(() =>
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              body: data,
              json: <T>() => JSON.parse(data.toString('utf8')) as T,
            }),
          );
        });
      });
      req.on('error', reject);
      req.end(body);
    });

  return {
    cache,
    cacheDir,
    port,
    outcomes,
    stale,
    send,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await cache.close();
      if (ownDir) rmSync(cacheDir, { recursive: true, force: true });
    },
  };
}
