/**
 * Helpers for the blob engine's unit tests: temp dirs, a scriptable plain-HTTP upstream that
 * counts requests, and a front server that hands every request to a cache.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRegistryCache, type RegistryCache } from '../src/cache.ts';
import type { RegistryCacheOptions } from '../src/options.ts';

export interface TestContextLike {
  after(fn: () => unknown): void;
}

export function tempDir(t: TestContextLike, prefix = 'drp-blob-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface Blob {
  readonly data: Buffer;
  readonly digest: string;
}

export function makeBlob(size: number): Blob {
  const data = randomBytes(size);
  return { data, digest: `sha256:${createHash('sha256').update(data).digest('hex')}` };
}

export function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export interface SeenRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
}

export interface TestUpstream {
  readonly port: number;
  readonly seen: SeenRequest[];
  count(method?: string, pathPart?: string): number;
  close(): Promise<void>;
}

export type UpstreamHandler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

/** A plain-HTTP upstream on 127.0.0.1:0. */
export async function startUpstream(t: TestContextLike, handler: UpstreamHandler): Promise<TestUpstream> {
  const seen: SeenRequest[] = [];
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers });
    void Promise.resolve(handler(req, res)).catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  t.after(close);
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    count: (method, pathPart) =>
      seen.filter((r) => (!method || r.method === method) && (!pathPart || r.url.includes(pathPart))).length,
    close,
  };
}

/** Serves registry blobs from a map: GET and HEAD, 404 for unknown digests. */
export function blobServer(blobs: Map<string, Buffer>): UpstreamHandler {
  return (req, res) => {
    const match = /\/blobs\/(sha256:[a-f0-9]{64})$/.exec(req.url ?? '');
    const data = match ? blobs.get(match[1] ?? '') : undefined;
    if (!data) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}');
      return;
    }
    res.writeHead(200, { 'content-length': data.length, 'content-type': 'application/octet-stream' });
    res.end(req.method === 'HEAD' ? undefined : data);
  };
}

export interface Front {
  readonly cache: RegistryCache;
  readonly port: number;
  get(path: string, headers?: http.OutgoingHttpHeaders, method?: string): Promise<FrontResponse>;
}

export interface FrontResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
  /** False when the connection was cut before a complete body. */
  readonly complete: boolean;
}

/** A cache for `upstream` (plain HTTP) behind a plain-HTTP front on 127.0.0.1:0. */
export async function startFront(
  t: TestContextLike,
  upstreamPort: number,
  options: Partial<RegistryCacheOptions> & { cacheDir: string },
): Promise<Front> {
  const cache = await createRegistryCache(options);
  const target = { host: '127.0.0.1', port: upstreamPort, protocol: 'http' as const };
  const server = http.createServer((req, res) => {
    void cache.handle(req, res, target);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  t.after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await cache.close();
  });
  return {
    cache,
    port,
    get: (path, headers = {}, method = 'GET') => request(port, path, headers, method),
  };
}

export function request(
  port: number,
  path: string,
  headers: http.OutgoingHttpHeaders = {},
  method = 'GET',
): Promise<FrontResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      const done = (complete: boolean) =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), complete });
      res.once('end', () => done(res.complete));
      res.once('error', () => done(false));
      res.once('aborted', () => done(false));
    });
    // A connection cut before any response (headers are flushed with the first body bytes)
    // is an incomplete response too.
    req.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNRESET') {
        resolve({ status: 0, headers: {}, body: Buffer.alloc(0), complete: false });
      } else {
        reject(error);
      }
    });
    req.end();
  });
}

export const blobPath = (digest: string, name = 'library/app') => `/v2/${name}/blobs/${digest}`;

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` until it is true (no timing assertions: only a generous deadline). */
export async function until(check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await delay(10);
  }
}
