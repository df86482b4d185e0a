import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import tls from 'node:tls';
import { loadOrCreateCA } from '@drp/ca';
import { watchSendStall } from '../src/front/stall-watch.ts';

const BODY = Buffer.alloc(32 << 20, 1);
const SEND_MS = 500;

/**
 * Serves BODY with the send watch, in one res.end(buffer) or streamed in 64 KiB writes as core
 * streams blobs; resolves how long until the response closed.
 */
function serve(server: http.Server, streamed = false): Promise<{ ms: number }> {
  return new Promise((resolve) => {
    server.once('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
      const started = Date.now();
      res.once('close', () => resolve({ ms: Date.now() - started }));
      watchSendStall(res, SEND_MS);
      res.writeHead(200, { 'content-length': BODY.length });
      if (!streamed) return void res.end(BODY);
      const chunks = Array.from({ length: BODY.length >> 16 }, (_, i) =>
        BODY.subarray(i << 16, (i + 1) << 16),
      );
      void pipeline(Readable.from(chunks), res).catch(() => {});
    });
  });
}

async function listen(server: net.Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

/** Reads in short bursts with pauses shorter than SEND_MS; resolves the bytes read when it closes. */
function slowReader(socket: net.Socket): Promise<number> {
  let received = 0;
  socket.on('data', (chunk: Buffer) => {
    received += chunk.length;
  });
  socket.pause();
  const timer = setInterval(() => {
    socket.resume();
    setTimeout(() => socket.pause(), 5);
  }, 50);
  return new Promise((resolve) => {
    socket.once('close', () => {
      clearInterval(timer);
      resolve(received);
    });
    // The whole body arrived: stop.
    socket.on('data', () => {
      if (received > BODY.length) socket.destroy();
    });
  });
}

const request = 'GET / HTTP/1.1\r\nhost: stall.test\r\n\r\n';

describe('send-stall watch (socket counters, no res.write patch)', () => {
  it('lets a plain client that reads slowly finish a body sent with res.end(buffer)', async (t) => {
    const server = http.createServer();
    t.after(() => server.close());
    const port = await listen(server);
    const outcome = serve(server);
    const client = net.connect(port, '127.0.0.1');
    client.write(request);
    const counted = slowReader(client);
    await outcome;
    const received = await counted;
    assert.ok(received > BODY.length, `received ${received} of ${BODY.length} bytes`);
  });

  it('cuts a plain client that stops reading a body sent with res.end(buffer)', async (t) => {
    const server = http.createServer();
    t.after(() => server.close());
    const port = await listen(server);
    const outcome = serve(server);
    const client = net.connect(port, '127.0.0.1');
    client.on('error', () => {});
    client.write(request);
    client.pause();
    let received = 0;
    client.on('data', (chunk: Buffer) => {
      received += chunk.length;
    });
    const { ms } = await outcome;
    client.resume();
    await once(client, 'close');
    assert.ok(received < BODY.length, `received ${received} bytes`);
    // Not before the stall limit; never closing at all would time the test out.
    assert.ok(ms >= SEND_MS, `closed after ${ms} ms`);
  });

  it('cuts a TLS client that stops reading, and lets one that reads slowly finish', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'drp-stall-'));
    const ca = await loadOrCreateCA({ dir });
    t.after(() => {
      ca.close();
      rmSync(dir, { recursive: true, force: true });
    });
    // As the dispatcher does: a TLSSocket made from the TCP socket, handed to an HTTP server.
    const server = http.createServer();
    const front = net.createServer((raw) => {
      ca.secureContext('stall.test').then((secureContext) => {
        server.emit('connection', new tls.TLSSocket(raw, { isServer: true, secureContext }));
      });
    });
    t.after(() => front.close());
    const port = await listen(front);
    const connect = () => {
      const socket = tls.connect({ port, host: '127.0.0.1', servername: 'stall.test', ca: ca.certPem });
      socket.on('error', () => {});
      socket.write(request);
      return socket;
    };

    const stalled = serve(server);
    const reader = connect();
    reader.pause();
    const cut = await stalled;
    let got = 0;
    reader.on('data', (chunk: Buffer) => {
      got += chunk.length;
    });
    reader.resume();
    await once(reader, 'close');
    assert.ok(got < BODY.length, `received ${got} bytes`);
    assert.ok(cut.ms >= SEND_MS, `closed after ${cut.ms} ms`);

    // Reads in bursts with pauses shorter than SEND_MS: it moves, so it is never cut.
    const moving = serve(server);
    const slow = connect();
    const counted = slowReader(slow);
    await moving;
    const received = await counted;
    assert.ok(received > BODY.length, `received ${received} of ${BODY.length} bytes`);
  });
});
