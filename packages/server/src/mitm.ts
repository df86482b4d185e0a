/**
 * The daemon's listening front: http-mitm-proxy's `Proxy` owns the listening socket and hands
 * every CONNECT (its `onConnect` hook) and every plain-HTTP request (`onRequest`) to drp's
 * dispatcher (front/dispatch.ts). drp never calls those hooks' callbacks, so http-mitm-proxy's own
 * intercept path (a TCP hop to internal HTTPS servers, leaves from its node-forge CA) and its
 * response forwarding (no backpressure) never run: drp terminates TLS itself with @drp/ca
 * leaves on one in-process server and streams with backpressure. This is the only file that
 * imports http-mitm-proxy; docs/daemon.md has the measurements behind the split.
 *
 * Adjustments to http-mitm-proxy 1.1.0, each for a reason found in its source:
 * - listen() always creates an RSA CA in `sslCaDir` (files 0644): drp points it at a 0700
 *   directory inside the CA dir, so it is made once, kept, unreadable by others, never used.
 * - The bind address is tried with a throwaway listener first: a bind error on its own server
 *   would go through its console-logging error path (stdout carries only the access log).
 * - Its WebSocket server is detached from the listening server: it would forward upgrades
 *   itself, to the request's Host, i.e. back into the proxy.
 * - The `error` listeners it puts on client sockets, requests and responses (console.*) are
 *   replaced by drp's (debug).
 * - It rewrites an absolute-form request URL to origin-form before onRequest: the original is
 *   kept by a `request` listener that runs before its own, and restored.
 * - It answers a request with neither an absolute URL nor Host itself (HTTP/1.0), and throws on
 *   an origin-form request whose Host is `http://[x`: such requests get the address they
 *   connected to as Host, so drp's endpoints answer them as before.
 */

import cluster from 'node:cluster';
import { once } from 'node:events';
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import net, { type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import createDebug from 'debug';
import { Proxy as MitmProxy } from 'http-mitm-proxy';
import { createDispatcher } from './front/dispatch.js';
import type { MitmOptions } from './front/types.js';

export type {
  ForwardRecord,
  MitmOptions,
  MitmTimeouts,
  RefusedRecord,
  TunnelRecord,
} from './front/types.js';

const debug = createDebug('drp:mitm');

export interface MitmFrontOptions extends MitmOptions {
  /**
   * Where http-mitm-proxy may keep the CA its listen() insists on creating: made mode 0700.
   * When it cannot be created (a read-only CA dir), a private temporary directory is used.
   */
  sslCaDir: string;
}

export interface MitmServer {
  /** The listening server (http-mitm-proxy's), once listening. */
  readonly server: Server | undefined;
  /** The directory http-mitm-proxy's unused CA lives in, once listening. */
  readonly sslCaDir: string | undefined;
  listen(port: number, host: string): Promise<AddressInfo>;
  /** Serves a request that arrived on another listener (MIRROR_TLS_PORT) like one on the proxy port. */
  request(req: IncomingMessage, res: ServerResponse): void;
  /** False for a new client while shutting down (see shutdown), for other listeners too. */
  accepts(socket: Socket): boolean;
  /** Requests being served plus open tunnels, right now. */
  readonly activeRequests: number;
  readonly openTunnels: number;
  /**
   * Graceful stop. New clients are refused at once; clients with a request or tunnel in flight
   * (or one that ended within `quietMs`) may still open connections, because a pull is many
   * requests over several connections and must be able to finish. When nothing has moved for
   * `quietMs`, or `graceMs` has passed, the listener and every socket are closed.
   */
  shutdown(graceMs: number, quietMs?: number): Promise<void>;
}

/** Creates `dir` mode 0700 (or makes an existing one 0700). */
async function privateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
}

/** Binds host:port once and lets go: the error http-mitm-proxy would hit, without its logging. */
async function tryBind(host: string, port: number): Promise<void> {
  const probe = net.createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.listen({ host, port, exclusive: true }, () => resolve());
  });
  await new Promise((resolve) => probe.close(resolve));
}

/** Drops every `error` listener: when drp gets an emitter, only http-mitm-proxy's (console) are on it. */
function dropErrorListeners(emitter: NodeJS.EventEmitter): void {
  for (const listener of emitter.listeners('error')) {
    emitter.off('error', listener as (...args: unknown[]) => void);
  }
}

function replaceErrorListeners(emitter: NodeJS.EventEmitter, own: (error: Error) => void): void {
  dropErrorListeners(emitter);
  emitter.on('error', own);
}

export function createMitmServer(options: MitmFrontOptions): MitmServer {
  const { timeouts } = options;
  const dispatcher = createDispatcher(options);
  const proxy = new MitmProxy();
  const originalUrls = new WeakMap<IncomingMessage, string>();
  let failListen: ((error: Error) => void) | undefined;
  let caDir: string | undefined;
  let tempCaDir: string | undefined;

  proxy.onError((_ctx, error, kind) => {
    debug('http-mitm-proxy %s: %s', kind, error?.message);
    if (kind === 'HTTP_SERVER_ERROR' && error && failListen) failListen(error);
  });

  proxy.onConnect((req, socket: Duplex, head: Buffer) => {
    // The callback is never called: http-mitm-proxy's own TLS path never runs. The dispatcher
    // attaches drp's own error listener at once.
    dropErrorListeners(socket);
    dispatcher.connect(req, socket, head);
  });

  proxy.onRequest((ctx) => {
    // The callback is never called: http-mitm-proxy never forwards a request itself.
    const req = ctx.clientToProxyRequest;
    const res = ctx.proxyToClientResponse;
    replaceErrorListeners(req, (error) => debug('client request error: %s', error.message));
    replaceErrorListeners(res, (error) => debug('client response error: %s', error.message));
    const url = originalUrls.get(req);
    if (url !== undefined) req.url = url;
    dispatcher.request(req, res);
  });

  /** Runs in the listen callback: before the first connection can be accepted. */
  function configure(server: Server): void {
    proxy.wsServer?.close();
    server.on('error', (error: Error) => debug('listening server: %s', error.message));
    server.requestTimeout = 0;
    server.headersTimeout = timeouts.clientHeaderMs;
    server.keepAliveTimeout = timeouts.keepAliveMs;
    server.timeout = 0;
    server.prependListener('request', (req: IncomingMessage) => {
      originalUrls.set(req, req.url ?? '/');
      // For an origin-form URL it reads Host: a missing one gets its own 400, and one starting
      // with `http://` goes through url.parse, which throws on `http://[x` (a crash).
      const host = req.headers.host;
      const absolute = /^http:\/\//.test(req.url ?? '');
      if (!absolute && (host === undefined || host.startsWith('http://'))) {
        const local = req.socket.localAddress ?? '127.0.0.1';
        const address = local.startsWith('::ffff:') ? local.slice(7) : local;
        req.headers.host = `${address.includes(':') ? `[${address}]` : address}:${req.socket.localPort}`;
      }
    });
    server.on('connection', (socket: Socket) => {
      if (!dispatcher.accepts(socket)) socket.destroy();
    });
    server.on('clientError', (error: Error & { code?: string }, socket: Duplex) => {
      debug('bad proxy request: %s', error.message);
      if (socket.writable && error.code !== 'ECONNRESET') {
        socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      } else socket.destroy();
    });
  }

  async function prepareCaDir(): Promise<string> {
    try {
      await privateDir(options.sslCaDir);
      return options.sslCaDir;
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code !== 'EACCES' && code !== 'EPERM' && code !== 'EROFS') throw error;
      tempCaDir ??= await mkdtemp(join(tmpdir(), 'drp-http-mitm-proxy-'));
      debug('cannot create %s (%s): http-mitm-proxy gets %s', options.sslCaDir, code, tempCaDir);
      return tempCaDir;
    }
  }

  return {
    get server() {
      return proxy.httpServer;
    },
    get sslCaDir() {
      return caDir;
    },
    request: (req, res) => dispatcher.request(req, res),
    accepts: (socket) => dispatcher.accepts(socket),
    get activeRequests() {
      return dispatcher.activeRequests;
    },
    get openTunnels() {
      return dispatcher.openTunnels;
    },
    async listen(port, host) {
      // A cluster worker binds through its primary, which hands connections to every server a
      // worker registers on the port: a probe there would be given clients it never answers.
      if (!cluster.isWorker) await tryBind(host, port);
      caDir = await prepareCaDir();
      const sslCaDir = caDir;
      await new Promise<void>((resolve, reject) => {
        failListen = (error) => {
          failListen = undefined;
          reject(error);
        };
        const listenOptions = { host, port, sslCaDir, keepAlive: true, timeout: 0, forceSNI: false };
        proxy.listen(listenOptions, (error) => {
          if (!failListen) return;
          failListen = undefined;
          if (error) return reject(error);
          configure(proxy.httpServer as Server);
          resolve();
        });
      });
      return (proxy.httpServer as Server).address() as AddressInfo;
    },
    async shutdown(graceMs, quietMs = 1000) {
      await dispatcher.drain(graceMs, quietMs);
      const server = proxy.httpServer;
      const closed = server?.listening ? once(server, 'close') : undefined;
      if (server) proxy.close();
      dispatcher.destroyAll();
      server?.closeAllConnections();
      await closed;
      if (tempCaDir) await rm(tempCaDir, { recursive: true, force: true });
    },
  };
}
