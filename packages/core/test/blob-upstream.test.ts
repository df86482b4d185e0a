/**
 * The upstream client against real TLS servers (harness test CA): every redirect kind, several
 * hops, relative Location, no registry credentials on another host, mapped addresses, an extra
 * CA, verification off, timeouts, byte-exact bodies.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { text } from 'node:stream/consumers';
import { describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { createHarness } from '../../../test/harness/index.ts';
import { isDrpError } from '../src/api/errors.ts';
import { resolveOptions, type UpstreamOptions } from '../src/options.ts';
import { UpstreamClient } from '../src/upstream/client.ts';

function client(t: { after(fn: () => unknown): void }, upstream: UpstreamOptions): UpstreamClient {
  const c = new UpstreamClient(resolveOptions({ cacheDir: '/nonexistent', upstream }).upstream);
  t.after(() => c.close());
  return c;
}

const REGISTRY = 'registry.test';
const CDN = 'cdn.test';

describe('upstream client', () => {
  for (const status of [301, 302, 303, 307, 308]) {
    test(`follows a ${status} to another host without sending it the registry's Authorization`, async (t) => {
      const h = createHarness(t);
      const cdn = await h.startHttpsServer(
        (req: IncomingMessage, res: ServerResponse) => {
          res.writeHead(200, { 'content-type': 'application/octet-stream' });
          res.end(`cdn:${req.url}`);
        },
        [CDN],
      );
      const registry = await h.startHttpsServer(
        (_req: IncomingMessage, res: ServerResponse) => {
          res.writeHead(status, {
            location: `https://${CDN}:${cdn.port}/blob/abc?X-Amz-Signature=s1g&Expires=9`,
          });
          res.end();
        },
        [REGISTRY],
      );
      const c = client(t, {
        mappings: { [REGISTRY]: '127.0.0.1', [CDN]: '127.0.0.1' },
        caCertificates: registry.caCertPem,
      });
      const r = await c.request(
        { host: REGISTRY, port: registry.port },
        {
          method: 'GET',
          path: '/v2/x/blobs/sha256:1',
          headers: { authorization: 'Bearer secret', cookie: 'c=1' },
        },
      );
      assert.equal(r.status, 200);
      assert.equal(await text(r.body), '/blob/abc?X-Amz-Signature=s1g&Expires=9'.replace(/^/, 'cdn:'));
      assert.equal(r.redirects, 1);
      assert.equal(r.finalHost, `${CDN}:${cdn.port}`);
      await registry.counter.settle(20);
      await cdn.counter.settle(20);
      const [first] = registry.counter.requests();
      const [second] = cdn.counter.requests();
      assert.equal(first?.headers?.authorization, 'Bearer secret');
      assert.equal(second?.headers?.authorization, undefined, 'no credentials for the CDN');
      assert.equal(second?.headers?.cookie, undefined);
      assert.equal(second?.method, 'GET');
    });
  }

  test('follows several hops, including a relative Location', async (t) => {
    const h = createHarness(t);
    const cdn = await h.startHttpsServer(
      (req: IncomingMessage, res: ServerResponse) => {
        if (req.url?.startsWith('/hop')) {
          // A relative redirect on the CDN itself (GAR-style).
          res.writeHead(302, { location: '/final/blob?sig=2' });
          res.end();
          return;
        }
        res.writeHead(200);
        res.end('bytes');
      },
      [CDN],
    );
    const registry = await h.startHttpsServer(
      (req: IncomingMessage, res: ServerResponse) => {
        if (req.url === '/v2/x/blobs/sha256:1') {
          res.writeHead(307, { location: '../../x/blobs/moved' });
        } else {
          res.writeHead(308, { location: `https://${CDN}:${cdn.port}/hop?sig=1` });
        }
        res.end();
      },
      [REGISTRY],
    );
    const c = client(t, {
      mappings: { [REGISTRY]: '127.0.0.1', [CDN]: '127.0.0.1' },
      caCertificates: registry.caCertPem,
    });
    const r = await c.request(
      { host: REGISTRY, port: registry.port },
      { method: 'GET', path: '/v2/x/blobs/sha256:1', headers: { authorization: 'Bearer secret' } },
    );
    assert.equal(r.status, 200);
    assert.equal(await text(r.body), 'bytes');
    assert.equal(r.redirects, 3);
    await registry.counter.settle(20);
    await cdn.counter.settle(20);
    assert.deepEqual(
      registry.counter.requests().map((q) => [q.path, q.headers?.authorization]),
      [
        ['/v2/x/blobs/sha256:1', 'Bearer secret'],
        ['/v2/x/blobs/moved', 'Bearer secret'],
      ],
    );
    assert.deepEqual(
      cdn.counter.requests().map((q) => [q.path, q.headers?.authorization]),
      [
        ['/hop?sig=1', undefined],
        ['/final/blob?sig=2', undefined],
      ],
    );
  });

  test('too many redirects is DRP_TOO_MANY_REDIRECTS', async (t) => {
    const h = createHarness(t);
    const loop = await h.startHttpsServer((_req: IncomingMessage, res: ServerResponse) => {
      res.writeHead(302, { location: '/again' });
      res.end();
    });
    const c = client(t, { caCertificates: loop.caCertPem, maxRedirects: 3 });
    await assert.rejects(
      c.request({ host: '127.0.0.1', port: loop.port }, { method: 'GET', path: '/' }),
      (e) => isDrpError(e) && e.code === 'DRP_TOO_MANY_REDIRECTS',
    );
  });

  test('a redirect is returned, not followed, when asked (pass-through)', async (t) => {
    const h = createHarness(t);
    const s = await h.startHttpsServer((_req: IncomingMessage, res: ServerResponse) => {
      res.writeHead(307, { location: 'https://elsewhere.test/x' });
      res.end();
    });
    const c = client(t, { caCertificates: s.caCertPem });
    const r = await c.request(
      { host: '127.0.0.1', port: s.port },
      { method: 'GET', path: '/', followRedirects: false },
    );
    assert.equal(r.status, 307);
    assert.equal(r.headers.location, 'https://elsewhere.test/x');
  });

  test('TLS: unknown CA is DRP_UPSTREAM_TLS; an extra CA or verification off makes it work', async (t) => {
    const h = createHarness(t);
    const s = await h.startHttpsServer(
      (_req: IncomingMessage, res: ServerResponse) => res.end('ok'),
      [REGISTRY],
    );
    const target = { host: REGISTRY, port: s.port };
    const mappings = { [REGISTRY]: '127.0.0.1' };
    await assert.rejects(
      client(t, { mappings }).request(target, { method: 'GET', path: '/' }),
      (e) => isDrpError(e) && e.code === 'DRP_UPSTREAM_TLS',
    );
    const withCa = await client(t, { mappings, caCertificates: [s.caCertPem] }).request(target, {
      method: 'GET',
      path: '/',
    });
    assert.equal(await text(withCa.body), 'ok');
    const unverified = await client(t, { mappings, verifyTls: false }).request(target, {
      method: 'GET',
      path: '/',
    });
    assert.equal(await text(unverified.body), 'ok');
    // The name is still verified against the certificate when mapped: a wrong name fails.
    await assert.rejects(
      client(t, { mappings: { 'wrong.test': '127.0.0.1' }, caCertificates: s.caCertPem }).request(
        { host: 'wrong.test', port: s.port },
        { method: 'GET', path: '/' },
      ),
      (e) => isDrpError(e) && e.code === 'DRP_UPSTREAM_TLS',
    );
  });

  test('mappings: host:port to address:port', async (t) => {
    const h = createHarness(t);
    const s = await h.startHttpsServer(
      (req: IncomingMessage, res: ServerResponse) => res.end(req.headers.host),
      [REGISTRY],
    );
    const c = client(t, {
      mappings: { [`${REGISTRY}:443`]: `127.0.0.1:${s.port}` },
      caCertificates: s.caCertPem,
    });
    const r = await c.request({ host: REGISTRY, port: 443 }, { method: 'GET', path: '/' });
    assert.equal(await text(r.body), REGISTRY, 'Host names the registry, not the address');
  });

  test('bodies are byte-exact: a gzip Content-Encoding is not decoded', async (t) => {
    const h = createHarness(t);
    const gz = gzipSync(Buffer.from('hello'));
    const s = await h.startHttpsServer((_req: IncomingMessage, res: ServerResponse) => {
      res.writeHead(200, { 'content-encoding': 'gzip', 'content-length': gz.length });
      res.end(gz);
    });
    const c = client(t, { caCertificates: s.caCertPem });
    const r = await c.request({ host: '127.0.0.1', port: s.port }, { method: 'GET', path: '/' });
    const chunks: Buffer[] = [];
    for await (const chunk of r.body) chunks.push(chunk as Buffer);
    assert.ok(Buffer.concat(chunks).equals(gz));
  });

  test('timeouts: no response headers, then a stalled body', async (t) => {
    const h = createHarness(t);
    const s = await h.startHttpsServer((req: IncomingMessage, res: ServerResponse) => {
      if (req.url === '/stall-body') {
        res.writeHead(200, { 'content-length': 100 });
        res.write('x');
      }
      // '/no-headers': never answers
    });
    const c = client(t, { caCertificates: s.caCertPem, responseTimeout: '300ms', readTimeout: '300ms' });
    await assert.rejects(
      c.request({ host: '127.0.0.1', port: s.port }, { method: 'GET', path: '/no-headers' }),
      (e) => isDrpError(e) && e.code === 'DRP_UPSTREAM_TIMEOUT',
    );
    const r = await c.request({ host: '127.0.0.1', port: s.port }, { method: 'GET', path: '/stall-body' });
    await assert.rejects(text(r.body), (e) => isDrpError(e) && e.code === 'DRP_UPSTREAM_TIMEOUT');
  });

  test('a large body (read from the response itself) arrives whole, and times out when it stalls', async (t) => {
    const h = createHarness(t);
    const size = 1024 * 1024;
    const s = await h.startHttpsServer((req: IncomingMessage, res: ServerResponse) => {
      res.writeHead(200, { 'content-length': size });
      res.write(Buffer.alloc(256 * 1024, 1));
      if (req.url === '/whole') res.end(Buffer.alloc(size - 256 * 1024, 2));
      // '/stall': the rest never comes
    });
    const c = client(t, { caCertificates: s.caCertPem, readTimeout: '1s' });
    const target = { host: '127.0.0.1', port: s.port };
    const whole = await c.request(target, { method: 'GET', path: '/whole' });
    let bytes = 0;
    for await (const chunk of whole.body) bytes += (chunk as Buffer).length;
    assert.equal(bytes, size);
    const stalled = await c.request(target, { method: 'GET', path: '/stall' });
    await assert.rejects(text(stalled.body), (e) => isDrpError(e) && e.code === 'DRP_UPSTREAM_TIMEOUT');
  });

  test('a slow but steady body is never cut by a total-time cap', async (t) => {
    const h = createHarness(t);
    const s = await h.startHttpsServer(async (_req: IncomingMessage, res: ServerResponse) => {
      res.writeHead(200, { 'content-length': 8 });
      for (let i = 0; i < 8; i += 1) {
        res.write('x');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      res.end();
    });
    const c = client(t, { caCertificates: s.caCertPem, responseTimeout: '300ms', readTimeout: '300ms' });
    const r = await c.request({ host: '127.0.0.1', port: s.port }, { method: 'GET', path: '/' });
    assert.equal(await text(r.body), 'xxxxxxxx');
  });

  test('a refused connection is DRP_UPSTREAM_UNREACHABLE', async (t) => {
    const h = createHarness(t);
    const s = await h.startHttpsServer((_req: IncomingMessage, res: ServerResponse) => res.end());
    const port = s.port;
    await s.close();
    const c = client(t, { connectTimeout: '2s' });
    await assert.rejects(
      c.request({ host: '127.0.0.1', port }, { method: 'GET', path: '/' }),
      (e) => isDrpError(e) && e.code === 'DRP_UPSTREAM_UNREACHABLE',
    );
  });
});
