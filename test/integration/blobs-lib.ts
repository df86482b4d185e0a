/**
 * The blob engine mounted in a small HTTPS server (certificate from the harness CA), in front
 * of a real registry, without the daemon: clients talk to https://127.0.0.1:PORT as if it were
 * the registry, and the cache forwards to `registry.test:<port>` mapped to 127.0.0.1.
 */
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { createServer, request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createRegistryCache, type RegistryCache, type RegistryCacheOptions } from '@drp/core';
import type { Harness } from '../harness/index.ts';

export interface DrpFront {
  readonly cache: RegistryCache;
  readonly port: number;
  readonly hostPort: string;
  readonly certDir: string;
  readonly caCertPem: string;
}

export async function startDrpFront(
  h: Harness,
  upstream: { host: string; port: number },
  options: Partial<RegistryCacheOptions> = {},
): Promise<DrpFront> {
  const ca = await h.testCA();
  const cert = await ca.issue(['localhost', '127.0.0.1']);
  const cache = await createRegistryCache({
    cacheDir: h.tempDir('drp-cache'),
    ...options,
    upstream: {
      mappings: { [upstream.host]: '127.0.0.1' },
      caCertificates: [ca.certPem],
      ...options.upstream,
    },
  });
  const server = createServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
    void cache.handle(req, res, upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  h.defer(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await cache.close();
  });
  return { cache, port, hostPort: `127.0.0.1:${port}`, certDir: ca.certDir, caCertPem: ca.certPem };
}

export interface HashedResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly digest: string;
  readonly bytes: number;
  /** False when the connection was cut before the body was complete. */
  readonly complete: boolean;
}

/** GETs a path, hashing the body as it streams (nothing buffered: fine for big blobs). */
export function fetchHashed(
  front: { port: number; caCertPem: string },
  path: string,
  headers: Record<string, string> = {},
): Promise<HashedResponse> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: front.port, path, headers, ca: front.caCertPem, agent: false },
      (res) => {
        const hash = createHash('sha256');
        let bytes = 0;
        let settled = false;
        const done = (complete: boolean) => {
          if (settled) return;
          settled = true;
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            digest: `sha256:${hash.digest('hex')}`,
            bytes,
            complete,
          });
        };
        res.on('data', (chunk: Buffer) => {
          hash.update(chunk);
          bytes += chunk.length;
        });
        res.once('end', () => done(res.complete));
        res.once('error', () => done(false));
        res.once('aborted', () => done(false));
        res.once('close', () => done(res.complete));
      },
    );
    // A connection cut before any response (drp sends headers with the first body bytes) is an
    // incomplete response too.
    req.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNRESET') {
        resolve({ status: 0, headers: {}, digest: '', bytes: 0, complete: false });
      } else {
        reject(error);
      }
    });
    req.end();
  });
}
