// Property-based tests (fast-check, bounded inputs) of how the front reads request targets:
// the CONNECT target and the absolute-form URL. First the parsers alone, then the real
// dispatcher fed raw request lines over sockets: whatever a client sends, nothing outside the
// grammar reaches the router (intercepts()/onRegistryRequest) or the upstream, and the path of
// an absolute-form request reaches the router exactly as sent (no second reading of it).
import assert from 'node:assert/strict';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import net, { type AddressInfo, isIPv6 } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createDestinationGuard } from '@drp/core';
import fc from 'fast-check';
import { createDispatcher } from '../../packages/server/src/front/dispatch.ts';
import { parseAbsoluteTarget, parseConnectTarget } from '../../packages/server/src/front/target.ts';
import type { Dispatcher } from '../../packages/server/src/front/types.ts';

const IPV4 = /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const HOSTNAME =
  /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

/** The grammar everything past the parser must satisfy. */
function assertHostPort(host: string, port: number, context: string): void {
  assert.ok(
    IPV4.test(host) || isIPv6(host) || (HOSTNAME.test(host) && !/(^|\.)(\d+|0x[0-9a-f]*)$/.test(host)),
    `host ${JSON.stringify(host)} from ${JSON.stringify(context)}`,
  );
  assert.ok(
    !/[@\s%/\\?#[\]]/.test(host.replace(/:/g, isIPv6(host) ? '' : ':')),
    `host ${JSON.stringify(host)}`,
  );
  assert.ok(
    Number.isInteger(port) && port >= 1 && port <= 65535,
    `port ${port} from ${JSON.stringify(context)}`,
  );
}

// Pieces a hostile or confused client might put in a target, mixed with valid ones.
const label = fc.stringMatching(/^[a-zA-Z0-9_-]{1,12}$/);
const oddHost = fc.constantFrom(
  'a@b',
  'user:pw@host',
  'h%2fx',
  'h%00',
  'ex\u00e4mple',
  '127.1',
  '0x7f.1',
  '[::1',
  '[fe80::1%25eth0]',
  '[::ffff:127.0.0.1]',
  '[1:2:3:4:5:6:7:8:9]',
  '..',
  '-a',
  'a..b',
  ' host',
  'a\tb',
  '',
);
const host = fc.oneof(
  fc.array(label, { minLength: 1, maxLength: 4 }).map((l) => l.join('.')),
  fc.ipV4(),
  fc.ipV6().map((a) => `[${a}]`),
  oddHost,
  fc.string({ maxLength: 20 }),
);
const port = fc.oneof(
  fc.integer({ min: 1, max: 65535 }).map(String),
  fc.constantFrom('0', '65536', '080', '+443', '443 ', '99999999', '', '-1', '1e3'),
);
const pathPiece = fc.constantFrom(
  'v2',
  '..',
  '.',
  '%2e%2e',
  '%2F',
  '%76%32',
  '',
  'a b',
  'x#frag',
  '?q=1',
  ';p',
  '\u00e9',
  '%00',
);
const path = fc.array(pathPiece, { maxLength: 6 }).map((p) => p.join('/'));
const connectTarget = fc.oneof(
  fc.tuple(host, port).map(([h, p]) => `${h}:${p}`),
  fc.tuple(host, port, host).map(([h, p, x]) => `${h}:${p}${x}`),
  fc.string({ maxLength: 40 }),
);
const absoluteTarget = fc.oneof(
  fc
    .tuple(fc.constantFrom('http', 'HTTP', 'https', 'ftp', 'http:', ''), host, fc.option(port), path)
    .map(([scheme, h, p, rest]) => `${scheme}://${h}${p === null ? '' : `:${p}`}/${rest}`),
  fc.string({ maxLength: 40 }).map((s) => `http://${s}`),
);

describe('the parsers alone', () => {
  test('a CONNECT target that parses is a host name or IP literal and a port 1-65535', () => {
    fc.assert(
      fc.property(connectTarget, (target) => {
        const parsed = parseConnectTarget(target);
        if (parsed) assertHostPort(parsed.host, parsed.port, target);
      }),
      { numRuns: 3000 },
    );
  });

  test('valid host:port targets parse to themselves', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc
            .array(fc.stringMatching(/^[a-z][a-z0-9-]{0,10}[a-z0-9]$/), { minLength: 1, maxLength: 3 })
            .map((l) => l.join('.')),
          fc.ipV4(),
        ),
        fc.integer({ min: 1, max: 65535 }),
        (h, p) => {
          assert.deepEqual(parseConnectTarget(`${h}:${p}`), { host: h, port: p });
          assert.deepEqual(parseConnectTarget(`${h.toUpperCase()}.:${p}`), { host: h, port: p });
        },
      ),
      { numRuns: 1000 },
    );
  });

  test('an absolute-form target that parses keeps its path byte for byte', () => {
    fc.assert(
      fc.property(absoluteTarget, (target) => {
        const parsed = parseAbsoluteTarget(target);
        if ('error' in parsed) return;
        assertHostPort(parsed.host, parsed.port, target);
        assert.ok(/^http:\/\//i.test(target));
        assert.match(parsed.path, /^\/[!-~]*$/);
        assert.ok(!parsed.path.includes('#'));
        // The path is the target's own tail (or `/` for none): nothing decoded or normalised.
        const afterAuthority = target.slice(target.indexOf('//') + 2).replace(/^[^/?]*/, '');
        assert.equal(
          parsed.path,
          afterAuthority === ''
            ? '/'
            : afterAuthority.startsWith('?')
              ? `/${afterAuthority}`
              : afterAuthority,
        );
        assert.ok(!/[@]/.test(target.slice(0, target.length - afterAuthority.length)), 'no userinfo');
      }),
      { numRuns: 3000 },
    );
  });
});

describe('the dispatcher, over real sockets', () => {
  const routed: { host: string; port: number; path?: string; target: string }[] = [];
  let current = '';
  let server: http.Server;
  let dispatcher: Dispatcher;
  let port = 0;

  before(async () => {
    dispatcher = createDispatcher({
      intercepts(host, p, scheme) {
        routed.push({ host, port: p, target: current });
        // Absolute-form requests go to the router; CONNECTs to a raw tunnel, refused by port.
        return scheme === 'http';
      },
      secureContext: () => Promise.reject(new Error('not used')),
      onRegistryRequest(req: IncomingMessage, res: ServerResponse, target) {
        routed.push({ host: target.host, port: target.port, path: req.url ?? '', target: current });
        res.writeHead(200, { 'content-length': 0 }).end();
      },
      onDirectRequest: (_req, res) => res.writeHead(404, { 'content-length': 0 }).end(),
      onTunnel: () => {},
      onForward: () => {},
      onRefused: () => {},
      admission: { check: () => Promise.resolve(undefined) },
      destinations: createDestinationGuard({ blocked: ['0.0.0.0/0', '::/0'] }),
      tunnelPorts: new Set<number>(),
      resolveAddress: (h, p) => ({ host: h, port: p }),
      family: undefined,
      timeouts: {
        clientHeaderMs: 2000,
        keepAliveMs: 2000,
        sendMs: 0,
        clientBodyMs: 0,
        tunnelIdleMs: 0,
        tunnelConnectMs: 1000,
      },
    });
    server = http.createServer((req, res) => dispatcher.request(req, res));
    server.on('connect', (req, socket, head) => dispatcher.connect(req, socket, head));
    server.on('clientError', (_e, socket) => socket.destroy());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    dispatcher.destroyAll();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  /** Sends one raw request line; resolves when the proxy answered or closed. */
  function send(line: string): Promise<void> {
    return new Promise((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.on('error', () => {});
      socket.once('close', () => resolve());
      socket.once('data', () => socket.destroy());
      socket.setTimeout(3000, () => socket.destroy());
      socket.write(`${line}\r\nhost: proxy.test\r\nconnection: close\r\n\r\n`, 'latin1');
    });
  }

  test('nothing outside the grammar reaches the router, and paths arrive unchanged', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          connectTarget.map((t) => ['CONNECT', t] as const),
          absoluteTarget.map((t) => ['GET', t] as const),
        ),
        async ([method, target]) => {
          // Bytes a request line cannot hold are the HTTP parser's business, not the router's.
          if (/[\r\n]/.test(target)) return;
          // A space ends the request-target (RFC 9112 request-line): what follows it is the
          // parser's business too. The router must see exactly the part before it.
          current = target.split(' ')[0] ?? '';
          const before = routed.length;
          await send(`${method} ${target} HTTP/1.1`);
          for (const r of routed.slice(before)) {
            assertHostPort(r.host, r.port, r.target);
            if (r.path !== undefined) {
              // No path at all becomes `/`; a query with no path (`http://h?q`) becomes `/?q`.
              const noPath = !/\/\/[^/?]*\//.test(r.target);
              assert.ok(
                r.target.endsWith(r.path) ||
                  (r.path === '/' && noPath) ||
                  (r.path.startsWith('/?') && noPath && r.target.endsWith(r.path.slice(1))),
                `${r.path} from ${r.target}`,
              );
              assert.match(r.path, /^\/[!-~]*$/);
            }
          }
        },
      ),
      // A target with a space in it (found by a run of this property) is checked every time.
      { numRuns: 300, examples: [[['GET', 'http://A? ']]] },
    );
    assert.ok(
      routed.length > 30,
      `only ${routed.length} requests reached the router: the generators are too hostile`,
    );
  });
});
