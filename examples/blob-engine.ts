// The blob engine alone, without the registry cache: a plain http server that serves blobs by
// digest (`GET /blobs/sha256:...`) from a store, fetching each missing one once from an origin
// however many clients ask at the same time, and verifying it against its digest before any
// client gets the last byte (a wrong or cut upstream body cuts every client; nothing is stored).
//
//   ORIGIN=https://registry.example/v2/library/alpine/blobs/ node --import tsx examples/blob-engine.ts
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { BlobEngine, BlobStore, type ContentHandle, type FillSource } from '@drp/core';

type Next = (into: Buffer) => Promise<Buffer | null>;

/** Copies a source to the response, a fresh buffer per chunk (the socket keeps it until sent). */
async function send(res: http.ServerResponse, next: Next): Promise<void> {
  for (
    let chunk = await next(Buffer.allocUnsafe(256 * 1024));
    chunk;
    chunk = await next(Buffer.allocUnsafe(256 * 1024))
  ) {
    if (!res.write(chunk)) await new Promise((resolve) => res.once('drain', resolve).once('close', resolve));
    if (res.destroyed) throw new Error('client went away');
  }
  res.end();
}

function fromHandle(handle: ContentHandle): Next {
  let at = 0;
  return async (into) => {
    const chunk = await handle.read(into, at);
    at += chunk.length;
    return chunk.length > 0 ? chunk : null;
  };
}

export async function startBlobServer(origin: string, dir: string, ca?: string) {
  const engine = new BlobEngine({
    store: await BlobStore.open({ dir, maxSizeBytes: 2 ** 34, inactiveMs: 0 }),
  });
  const fetchFrom = (url: string) => (): Promise<FillSource> =>
    new Promise((resolve, reject) => {
      const req = https.get(url, { ca }, (body) =>
        resolve({ status: body.statusCode ?? 502, headers: body.headers, body, abort: () => body.destroy() }),
      );
      req.on('error', reject);
    });
  const server = http.createServer(async (req, res) => {
    const digest = /^\/blobs\/(sha256:[a-f0-9]{64})$/.exec(req.url ?? '')?.[1];
    if (!digest) return void res.writeHead(404).end();
    try {
      const got = await engine.get(digest, fetchFrom(`${origin}${digest}`));
      if (got.kind === 'stored') {
        res.writeHead(200, { 'content-length': got.handle.size, 'docker-content-digest': digest });
        await send(res, fromHandle(got.handle)).finally(() => got.handle.release());
      } else if (got.kind === 'fill') {
        res.writeHead(200, {
          ...(got.size === undefined ? {} : { 'content-length': got.size }),
          'docker-content-digest': digest,
        });
        await send(res, got.cursor.next).finally(() => got.cursor.close());
      } else {
        res.writeHead(got.kind === 'declined' ? got.response.status : 503).end();
        if (got.kind === 'declined') got.response.body.resume();
      }
    } catch {
      res.destroy(); // upstream failed or the bytes did not verify: never a clean end
    }
  });
  await new Promise<void>((resolve) => server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', resolve));
  const close = async () => {
    server.closeAllConnections();
    server.close();
    engine.close();
    await engine.store.close();
  };
  return { port: (server.address() as AddressInfo).port, engine, close };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const running = await startBlobServer(
    process.env.ORIGIN ?? '',
    process.env.CACHE_DIR ?? '.drp/blob-engine',
  );
  process.stdout.write(`blobs on http://127.0.0.1:${running.port}/blobs/<digest>\n`);
}
