// startProxy(): drp in-process, in one line, for test suites; plus the proxy behaviours that
// are easier to reach in-process: plain-HTTP proxy requests, IPv6 CONNECT targets, several
// proxies in one process, temporary directories removed on close.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import tls from 'node:tls';
import type { RequestOutcome } from '@drp/core';
import { startProxy } from '@drp/server';
import { createHarness } from '../harness/index.ts';

/** GET through the proxy with an absolute-form URL, as HTTP_PROXY clients do. */
function viaProxy(
  proxyPort: number,
  url: string,
): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1',
      port: proxyPort,
      path: url,
      agent: false,
      headers: { host: new URL(url).host },
    });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function connect(proxyPort: number, target: string): Promise<net.Socket> {
  const req = http.request({
    host: '127.0.0.1',
    port: proxyPort,
    method: 'CONNECT',
    path: target,
    agent: false,
  });
  req.end();
  const [res, socket] = (await once(req, 'connect')) as [http.IncomingMessage, net.Socket];
  assert.equal(res.statusCode, 200);
  return socket;
}

test('startProxy: a skopeo pull through an in-process proxy, events, and cleanup on close', async (t) => {
  const h = createHarness(t);
  const ca = await h.testCA();
  const registry = await h.startRegistry();
  const image = await h.createImage({ layers: [500_000] });
  await registry.push(image, 'embed/app:v1');
  const named = `registry.test:${registry.port}`;

  const proxy = await startProxy({
    registries: [named],
    upstreamCa: ca.certPem,
    upstreamMappings: { 'registry.test': '127.0.0.1' },
  });
  t.after(() => proxy.close());
  assert.match(proxy.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.notEqual(proxy.port, 3128);
  assert.deepEqual(proxy.env().HTTPS_PROXY, proxy.url);
  const outcomes: RequestOutcome[] = [];
  proxy.events.on('request', (o) => outcomes.push(o));

  const certDir = h.tempDir('drp-ca');
  await writeFile(join(certDir, 'ca.crt'), proxy.caCertPem);
  for (let i = 0; i < 2; i++) {
    const pulled = await h.pullImage(named, 'embed/app:v1', { env: proxy.env(), certDir });
    assert.equal(pulled.manifestDigest, image.manifestDigest);
  }
  const blobs = outcomes.filter((o) => o.requestType === 'blob-by-digest' && o.method === 'GET');
  assert.ok(
    blobs.some((o) => o.cacheStatus === 'HIT'),
    JSON.stringify(blobs),
  );
  assert.ok(blobs.every((o) => o.registry === named));

  // A second proxy in the same process is independent (own port, CA and cache).
  const other = await startProxy();
  assert.notEqual(other.port, proxy.port);
  assert.notEqual(other.caFingerprint, proxy.caFingerprint);
  await other.close();
  assert.equal(existsSync(other.cacheDir), false);
  assert.equal(existsSync(other.caDir), false);

  await proxy.close();
  assert.equal(existsSync(proxy.cacheDir), false);
  await assert.rejects(viaProxy(proxy.port, 'http://example.test/'), /ECONNREFUSED/);
});

test('plain-HTTP proxy requests: intercepted hosts are served by the cache, others forwarded', async (t) => {
  const h = createHarness(t);
  // A plain-HTTP "registry" and a plain web server, both on 127.0.0.1 under names.
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    seen.push(`${req.headers.host} ${req.url}`);
    if (req.url === '/v2/') res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    else res.writeHead(200, { 'content-type': 'text/plain' }).end(`hello ${req.url}`);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  h.defer(() => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });
  const port = (server.address() as net.AddressInfo).port;

  const lines: string[] = [];
  const proxy = await startProxy({
    registries: [`plainreg.test:${port}`],
    upstreamMappings: { 'plainreg.test': '127.0.0.1', 'web.test': '127.0.0.1' },
    log: (line) => lines.push(line),
    // The refused CONNECT below is to a random port: let it through TUNNEL_PORTS to see the 502.
    env: { TUNNEL_PORTS: '*' },
  });
  t.after(() => proxy.close());

  // A bare host in REGISTRIES means port 443 (CONNECT) or 80 (plain HTTP); this one names its port.
  const ping = await viaProxy(proxy.port, `http://plainreg.test:${port}/v2/`);
  assert.equal(ping.status, 200);
  assert.equal(ping.headers['x-docker-registry-proxy-cache-type'], 'ping');
  const forwarded = await viaProxy(proxy.port, `http://web.test:${port}/page?q=secret-token`);
  assert.equal(forwarded.status, 200);
  assert.equal(forwarded.body, '/page?q=secret-token'.replace(/^/, 'hello '));
  assert.deepEqual(seen, [`plainreg.test:${port} /v2/`, `web.test:${port} /page?q=secret-token`]);

  // Unreachable upstreams: a 502 for a forwarded request and for a CONNECT, and the proxy lives on.
  const closedPort = await new Promise<number>((resolve) => {
    const probe = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (probe.address() as net.AddressInfo).port;
      probe.close(() => resolve(p));
    });
  });
  assert.equal((await viaProxy(proxy.port, `http://web.test:${closedPort}/`)).status, 502);
  const refusedConnect = http.request({
    host: '127.0.0.1',
    port: proxy.port,
    method: 'CONNECT',
    path: `web.test:${closedPort}`,
    agent: false,
  });
  refusedConnect.end();
  const [connectRes, connectSocket] = (await once(refusedConnect, 'connect')) as [
    http.IncomingMessage,
    net.Socket,
  ];
  assert.equal(connectRes.statusCode, 502);
  connectSocket.destroy();
  // The tunnel's line is written when the client's socket has closed.
  for (let i = 0; i < 100 && !lines.some((l) => l.includes('"type":"tunnel"')); i++) {
    await new Promise((r) => setTimeout(r, 20));
  }

  const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.ok(
    parsed.some((l) => l.type === 'tunnel' && l.error === 'ECONNREFUSED'),
    lines.join(''),
  );
  assert.ok(
    parsed.some(
      (l) => l.type === 'request' && l.request_type === 'ping' && l.host === `plainreg.test:${port}`,
    ),
  );
  assert.ok(parsed.some((l) => l.type === 'forward' && l.uri === '/page' && l.status === 200));
  assert.doesNotMatch(lines.join(''), /secret-token/);
});

test('IPv6 CONNECT targets: tunnelled raw, and intercepted with a leaf for the IP literal', async (t) => {
  const h = createHarness(t);
  const echo = net.createServer((s) => s.pipe(s));
  echo.listen(0, '::1');
  await once(echo, 'listening');
  h.defer(() => new Promise<void>((r) => echo.close(() => r())));
  const echoPort = (echo.address() as net.AddressInfo).port;

  // The echo server is on loopback: opened on purpose (TUNNEL_PORTS, BLOCKED_DESTINATIONS).
  const proxy = await startProxy({
    registries: ['[::1]:4443'],
    env: { TUNNEL_PORTS: '*', BLOCKED_DESTINATIONS: '' },
  });
  t.after(() => proxy.close());

  const tunnel = await connect(proxy.port, `[::1]:${echoPort}`);
  tunnel.write('ping over v6');
  const [reply] = (await once(tunnel, 'data')) as [Buffer];
  assert.equal(reply.toString(), 'ping over v6');
  tunnel.destroy();

  const socket = await connect(proxy.port, '[::1]:4443');
  const secure = tls.connect({ socket, ca: proxy.caCertPem, host: '::1' });
  await once(secure, 'secureConnect');
  assert.match(
    String(secure.getPeerCertificate().subjectaltname),
    /IP Address:0:0:0:0:0:0:0:1|IP Address:::1/,
  );
  secure.destroy();
});

test('a client that does not trust the CA, or sends garbage, does not disturb the proxy', async (t) => {
  const proxy = await startProxy({ registries: ['registry.test'] });
  t.after(() => proxy.close());
  const socket = await connect(proxy.port, 'registry.test:443');
  const untrusting = tls.connect({ socket, servername: 'registry.test' });
  const [error] = (await once(untrusting, 'error')) as [Error & { code?: string }];
  assert.match(String(error.code), /SELF_SIGNED|UNABLE_TO_GET_ISSUER|UNABLE_TO_VERIFY/);

  const raw = net.connect(proxy.port, '127.0.0.1');
  raw.write('NONSENSE\r\n\r\n');
  raw.resume();
  await once(raw, 'close');

  const bad = await connect(proxy.port, 'registry.test:443');
  bad.write('GET /v2/ HTTP/1.1\r\nhost: registry.test\r\n\r\n'); // plain HTTP inside an intercepted CONNECT
  bad.destroy();

  const res = await new Promise<number>((resolve, reject) =>
    http.get(`${proxy.url}/healthz`, (r) => resolve(r.statusCode ?? 0)).on('error', reject),
  );
  assert.equal(res, 200);
});

test('SEND_TIMEOUT and CLIENT_BODY_TIMEOUT cut clients that stall, not transfers that move', async (t) => {
  const h = createHarness(t);
  // A plain-HTTP upstream: 64 MiB on GET, and it reads whatever body it is sent.
  const big = Buffer.alloc(64 << 20, 7);
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-length': big.length }).end(big));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  h.defer(() => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });
  const port = (server.address() as net.AddressInfo).port;
  const proxy = await startProxy({
    registries: [`slow.test:${port}`],
    upstreamMappings: { 'slow.test': '127.0.0.1' },
    env: { SEND_TIMEOUT: '1s', CLIENT_BODY_TIMEOUT: '1s' },
  });
  t.after(() => proxy.close(0));

  // A client that never reads its response is disconnected about SEND_TIMEOUT after the
  // socket buffers fill: its request ends aborted, with fewer bytes than the body.
  const outcome = once(proxy.events, 'request') as Promise<[RequestOutcome]>;
  const reader = net.connect(proxy.port, '127.0.0.1');
  reader.on('error', () => {});
  reader.write(`GET http://slow.test:${port}/v2/ HTTP/1.1\r\nhost: slow.test:${port}\r\n\r\n`);
  reader.pause();
  const [stalled] = await outcome;
  reader.destroy();
  assert.equal(stalled.aborted, true);
  assert.ok(stalled.bytes < big.length);
  assert.ok(stalled.totalMs >= 900 && stalled.totalMs < 10_000, `closed after ${stalled.totalMs} ms`);

  // A client that announces a body and stops sending is disconnected after CLIENT_BODY_TIMEOUT.
  const sender = net.connect(proxy.port, '127.0.0.1');
  sender.on('error', () => {});
  sender.write(
    `PATCH http://slow.test:${port}/v2/x/blobs/uploads/1 HTTP/1.1\r\nhost: slow.test:${port}\r\ncontent-length: 1000\r\n\r\n0123456789`,
  );
  sender.resume();
  const sent = Date.now();
  await Promise.race([once(sender, 'close'), once(sender, 'end')]);
  const gone = Date.now() - sent;
  assert.ok(gone >= 900 && gone < 5_000, `closed after ${gone} ms`);

  // A client that keeps reading, slowly, is not cut: 64 MiB at full speed through the proxy.
  const whole = await viaProxy(proxy.port, `http://slow.test:${port}/v2/`);
  assert.equal(whole.body.length, big.length);
});

test('listens on IPv6 too: BIND ::1', async () => {
  const proxy = await startProxy({ host: '::1' });
  try {
    assert.match(proxy.url, /^http:\/\/\[::1\]:\d+$/);
    const status = await new Promise<number>((resolve, reject) =>
      http.get(`${proxy.url}/healthz`, (r) => resolve(r.statusCode ?? 0)).on('error', reject),
    );
    assert.equal(status, 200);
  } finally {
    await proxy.close();
  }
});
