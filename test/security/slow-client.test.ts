// CLIENT_HEADER_TIMEOUT inside intercepted (TLS-terminated) connections, through drp-server: a
// client trickling its request head one byte at a time is never idle, so only a timer on the
// whole head cuts it: before this, such a client was held for minutes. Both the first request
// of a connection and a later one on a kept-alive connection are covered, and an idle
// kept-alive connection still closes after KEEPALIVE_TIMEOUT.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import tls from 'node:tls';
import { createHarness } from '../harness/index.ts';
import { startDaemon } from '../integration/daemon-lib.ts';
import { rawConnect } from './lib.ts';

/** Writes `bytes` one at a time every `everyMs`; resolves with how many were written before the close. */
async function trickle(
  socket: tls.TLSSocket,
  bytes: string,
  everyMs: number,
): Promise<{ closed: boolean; sent: number }> {
  let closed = socket.destroyed;
  socket.once('close', () => {
    closed = true;
  });
  let sent = 0;
  for (const byte of bytes) {
    if (closed) break;
    socket.write(byte);
    sent += 1;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return { closed, sent };
}

async function response(socket: tls.TLSSocket): Promise<string> {
  let data = '';
  while (!/\r\n\r\n/.test(data)) {
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    data += chunk.toString('latin1');
  }
  return data;
}

test('a slow-header client inside an intercepted connection is cut after CLIENT_HEADER_TIMEOUT, first request or later', async (t) => {
  const h = createHarness(t);
  const ca = await h.testCA();
  const fake = await h.startHttpsServer(
    (_req, res) => {
      res
        .writeHead(200, {
          'docker-distribution-api-version': 'registry/2.0',
          'content-type': 'application/json',
        })
        .end('{}');
    },
    ['slow.test'],
  );
  const drp = await startDaemon(h, {
    REGISTRIES: fake.namedHostPort,
    UPSTREAM_MAPPINGS: 'slow.test=127.0.0.1',
    UPSTREAM_CA_FILE: ca.certPath,
    CLIENT_HEADER_TIMEOUT: '1s',
    KEEPALIVE_TIMEOUT: '2s',
    CACHE_DIR: h.tempDir('cache'),
    CA_DIR: h.tempDir('ca'),
  });
  const open = async () => {
    const tunnel = await rawConnect(drp.port, fake.namedHostPort);
    assert.equal(tunnel.status, 200);
    const secure = tls.connect({ socket: tunnel.socket, servername: 'slow.test', ca: drp.caPem });
    await once(secure, 'secureConnect');
    secure.on('error', () => {});
    return secure;
  };
  const head = `GET /v2/ HTTP/1.1\r\nhost: ${fake.namedHostPort}\r\n`;
  // 40 bytes, one every 200 ms: 8 s of a client that is never idle for 1 s.
  const slowHeader = `x-slow: ${'a'.repeat(30)}\r\n\r\n`.slice(0, 40);

  const first = await open();
  first.write(head);
  const cutFirst = await trickle(first, slowHeader, 200);
  assert.equal(cutFirst.closed, true, `held for all ${cutFirst.sent} bytes`);
  assert.ok(cutFirst.sent < slowHeader.length);

  const later = await open();
  later.write(`${head}\r\n`);
  assert.match(await response(later), /^HTTP\/1\.1 200/);
  later.write(head);
  const cutLater = await trickle(later, slowHeader, 200);
  assert.equal(cutLater.closed, true, `held for all ${cutLater.sent} bytes`);

  // Idle between requests: KEEPALIVE_TIMEOUT (2 s) closes it.
  const idle = await open();
  idle.write(`${head}\r\n`);
  assert.match(await response(idle), /^HTTP\/1\.1 200/);
  const idleClosed = await Promise.race([
    once(idle, 'close').then(() => true),
    new Promise<boolean>((r) => setTimeout(() => r(false), 8000)),
  ]);
  assert.equal(idleClosed, true);
});
