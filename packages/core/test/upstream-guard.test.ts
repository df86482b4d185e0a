/**
 * The upstream client's bounds and egress rules against real TLS servers on loopback:
 *   - one TLS context for all connections (with extra CAs, Node would otherwise build one from
 *     the whole root bundle per connection: seconds of CPU for a few hundred connections)
 *   - BLOCKED_DESTINATIONS checked on every connection and redirect hop, mapped names exempt
 *   - no redirect from https to http
 */
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { text } from 'node:stream/consumers';
import { describe, test } from 'node:test';
import tls from 'node:tls';
import { createHarness } from '../../../test/harness/index.ts';
import { isDrpError } from '../src/api/errors.ts';
import { createDestinationGuard } from '../src/net/destination-guard.ts';
import { resolveOptions, type UpstreamOptions } from '../src/options.ts';
import { UpstreamClient } from '../src/upstream/client.ts';

function client(t: { after(fn: () => unknown): void }, upstream: UpstreamOptions): UpstreamClient {
  const c = new UpstreamClient(resolveOptions({ cacheDir: '/nonexistent', upstream }).upstream);
  t.after(() => c.close());
  return c;
}

const LOOPBACK = ['127.0.0.0/8', '::1/128'];

describe('upstream bounds and egress', () => {
  test('with extra CAs, 40 connections share one TLS context', async (t) => {
    const h = createHarness(t);
    let connections = 0;
    const server = await h.startHttpsServer(
      (_req: IncomingMessage, res: ServerResponse) => {
        res.writeHead(200, { connection: 'close' }).end('ok');
      },
      ['registry.test'],
    );
    server.server.on('secureConnection', () => {
      connections += 1;
    });
    // got loads on the first upstream request; its http2-wrapper makes one TLS context when it
    // loads (not per connection), so it is loaded before counting.
    await import('got');
    const created: unknown[] = [];
    const original = tls.createSecureContext;
    tls.createSecureContext = ((options?: tls.SecureContextOptions) => {
      const context = original(options);
      created.push(context);
      return context;
    }) as typeof tls.createSecureContext;
    t.after(() => {
      tls.createSecureContext = original;
    });
    const c = client(t, { mappings: { 'registry.test': '127.0.0.1' }, caCertificates: server.caCertPem });
    const madeByClient = created.length;
    const responses = await Promise.all(
      Array.from({ length: 40 }, () =>
        c.request({ host: 'registry.test', port: server.port }, { method: 'GET', path: '/v2/' }),
      ),
    );
    for (const r of responses) assert.equal(await text(r.body), 'ok');
    assert.ok(connections >= 20, `the server answered on ${connections} connections`);
    assert.equal(madeByClient, 1, 'one context, made when the client was');
    assert.equal(
      created.length,
      1,
      `${created.length - madeByClient} contexts made for ${connections} connections`,
    );
  });

  test('a redirect from https to http is refused, whatever the destination', async (t) => {
    const h = createHarness(t);
    let reached = 0;
    const plain = http.createServer((_req, res) => {
      reached += 1;
      res.end('leak');
    });
    await new Promise<void>((r) => plain.listen(0, '127.0.0.1', () => r()));
    h.defer(() => new Promise<void>((r) => plain.close(() => r())));
    const port = (plain.address() as AddressInfo).port;
    const registry = await h.startHttpsServer(
      (_req: IncomingMessage, res: ServerResponse) => {
        res.writeHead(302, { location: `http://plain.test:${port}/x` }).end();
      },
      ['registry.test'],
    );
    // Not even a blocked-destinations list is needed: the scheme alone refuses it.
    const c = client(t, {
      mappings: { 'registry.test': '127.0.0.1', 'plain.test': '127.0.0.1' },
      caCertificates: registry.caCertPem,
    });
    await assert.rejects(
      c.request({ host: 'registry.test', port: registry.port }, { method: 'GET', path: '/v2/a/manifests/b' }),
      (e: unknown) => isDrpError(e) && e.code === 'DRP_REDIRECT_REFUSED' && e.status === 502,
    );
    assert.equal(reached, 0);
  });

  test('blocked ranges: refused on connect and on a redirect hop; the mapped name is exempt', async (t) => {
    const h = createHarness(t);
    const other = await h.startHttpsServer((_req: IncomingMessage, res: ServerResponse) => {
      res.end('other');
    });
    let otherConnections = 0;
    other.server.on('connection', () => {
      otherConnections += 1;
    });
    const registry = await h.startHttpsServer(
      (req: IncomingMessage, res: ServerResponse) => {
        if (req.url === '/hop') res.writeHead(307, { location: `https://localhost:${other.port}/x` }).end();
        else if (req.url === '/literal')
          res.writeHead(307, { location: `https://127.0.0.1:${other.port}/x` }).end();
        else res.end('registry');
      },
      ['registry.test'],
    );
    const c = client(t, {
      mappings: { 'registry.test': '127.0.0.1' },
      caCertificates: registry.caCertPem,
      blockedDestinations: LOOPBACK,
    });
    const target = { host: 'registry.test', port: registry.port };
    const ok = await c.request(target, { method: 'GET', path: '/' });
    assert.equal(await text(ok.body), 'registry');
    for (const path of ['/hop', '/literal']) {
      await assert.rejects(
        c.request(target, { method: 'GET', path }),
        (e: unknown) =>
          isDrpError(e) &&
          e.code === 'DRP_DESTINATION_BLOCKED' &&
          e.status === 502 &&
          /blocked range/.test(e.message),
      );
    }
    await assert.rejects(
      c.request({ host: '127.0.0.1', port: other.port }, { method: 'GET', path: '/' }),
      (e: unknown) => isDrpError(e) && e.code === 'DRP_DESTINATION_BLOCKED',
    );
    assert.equal(otherConnections, 0);
  });

  test('the guard: exemptions by name and port, v4-mapped addresses, resolution-time refusal', async () => {
    const guard = createDestinationGuard({ blocked: LOOPBACK, exempt: ['reg.test:5000', 'any.test'] });
    assert.equal(guard.isExempt('reg.test', 5000), true);
    assert.equal(guard.isExempt('REG.test.', 5000), true);
    assert.equal(guard.isExempt('reg.test', 5001), false);
    assert.equal(guard.isExempt('any.test', 1), true);
    assert.ok(guard.plan('x', 1, '127.0.0.9').refused);
    assert.ok(guard.plan('x', 1, '::ffff:127.0.0.1').refused);
    assert.ok(guard.plan('x', 1, '[::1]').refused);
    assert.equal(guard.plan('reg.test', 5000, '127.0.0.1').refused, undefined);
    const plan = guard.plan('localhost', 80, 'localhost');
    assert.ok(!plan.refused && plan.lookup);
    const lookup = plan.lookup;
    const error = await new Promise<Error | null>((resolve) =>
      lookup('localhost', { all: true }, (err) => resolve(err)),
    );
    assert.equal((error as { code?: string } | null)?.code, 'DRP_DESTINATION_BLOCKED');
    assert.equal(createDestinationGuard({}).active, false);
    assert.throws(() => createDestinationGuard({ blocked: ['10.0.0.0/40'] }), /not a CIDR/);
  });
});
