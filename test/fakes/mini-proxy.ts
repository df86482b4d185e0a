// A minimal intercepting proxy for integration tests of @drp/core without the daemon: an HTTP
// CONNECT listener that terminates TLS (a test-CA certificate for the given names) and hands
// every request to `cache.handle()` for the CONNECT target, so clients use HTTPS_PROXY exactly
// as with the daemon. Upstream names are mapped to 127.0.0.1 by the cache options.

import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type CacheEventMap,
  createRegistryCache,
  parseHostPort,
  type RegistryCache,
  type RegistryCacheOptions,
  type RequestOutcome,
} from '../../packages/core/src/index.ts';
import type { Harness } from '../harness/index.ts';

export interface MiniProxy {
  cache: RegistryCache;
  cacheDir: string;
  /** `http://127.0.0.1:PORT` for HTTPS_PROXY. */
  url: string;
  /** A dir with the test CA's ca.crt, for skopeo --src-cert-dir / --dest-cert-dir. */
  certDir: string;
  outcomes: RequestOutcome[];
  stale: CacheEventMap['stale'][0][];
  /** CONNECT targets seen, e.g. `registry.test:41234`. */
  connects: string[];
  close(): Promise<void>;
}

export interface MiniProxyOptions extends Omit<RegistryCacheOptions, 'cacheDir'> {
  /** Host names clients will CONNECT to (certificate SANs), e.g. ['registry.test', 'auth.test']. */
  names: string[];
  cacheDir?: string;
}

export async function startMiniProxy(h: Harness, opts: MiniProxyOptions): Promise<MiniProxy> {
  const ca = await h.testCA();
  const cert = await ca.issue(['localhost', '127.0.0.1', ...opts.names]);
  const ownDir = opts.cacheDir === undefined;
  const cacheDir = opts.cacheDir ?? mkdtempSync(join(tmpdir(), 'drp-mini-'));
  const { names: _names, cacheDir: _dir, ...cacheOptions } = opts;
  const mappings = Object.fromEntries(opts.names.map((n) => [n, '127.0.0.1']));
  const cache = await createRegistryCache({
    ...cacheOptions,
    cacheDir,
    upstream: {
      ...cacheOptions.upstream,
      mappings: { ...mappings, ...cacheOptions.upstream?.mappings },
      caCertificates: [ca.certPem],
    },
  });
  const outcomes: RequestOutcome[] = [];
  const stale: CacheEventMap['stale'][0][] = [];
  const connects: string[] = [];
  cache.events.on('request', (o) => outcomes.push(o));
  cache.events.on('stale', (s) => stale.push(s));

  const tls = createHttpsServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
    const target = parseHostPort(String(req.headers.host ?? ''));
    if (!target) {
      res.writeHead(400).end('no host');
      return;
    }
    void cache.handle(req, res, target);
  });
  tls.requestTimeout = 0;
  tls.headersTimeout = 0;
  const sockets = new Set<Socket>();
  const proxy: Server = createHttpServer((_req, res) => {
    res.writeHead(404).end();
  });
  proxy.on('connect', (req, socket: Socket, head: Buffer) => {
    connects.push(req.url ?? '');
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length > 0) socket.unshift(head);
    tls.emit('connection', socket);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const { port } = proxy.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => {
        proxy.close(() => resolve());
        proxy.closeAllConnections();
      });
      tls.close();
      await cache.close();
      if (ownDir) rmSync(cacheDir, { recursive: true, force: true });
    })();
    return closing;
  };
  h.defer(close);
  return {
    cache,
    cacheDir,
    url: `http://127.0.0.1:${port}`,
    certDir: ca.certDir,
    outcomes,
    stale,
    connects,
    close,
  };
}
