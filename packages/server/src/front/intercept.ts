/**
 * TLS termination for intercepted CONNECT targets: "200 Connection Established", then a
 * TLSSocket with the leaf for the host (from @drp/ca) is handed to one in-process HTTP server
 * with emit('connection'). The upstream of every request on it is the CONNECT target (a
 * WeakMap), never `Host`. A client that does not speak TLS inside the tunnel is tunnelled raw.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { type SecureContext, TLSSocket } from 'node:tls';
import type { UpstreamTarget } from '@drp/core';
import createDebug from 'debug';
import type { MitmOptions, MitmTimeouts } from './types.js';

const debug = createDebug('drp:mitm');

export interface Interceptor {
  /** Takes over an admitted CONNECT to an intercepted host:port. */
  intercept(client: Socket, head: Buffer, target: { host: string; port: number }): Promise<void>;
  /** Closes every TLS connection and stops the inner server's sweep. */
  destroyAll(): void;
}

/** What the interceptor needs besides the options: where requests and non-TLS clients go. */
export interface InterceptHooks {
  request(req: IncomingMessage, res: ServerResponse, target: UpstreamTarget): void;
  notTls(client: Socket, target: { host: string; port: number }): void;
}

/**
 * Never listens: TLS-terminated sockets are handed to it. Node tracks connections and runs its
 * periodic headersTimeout sweep (the time from a request's first byte until its head is
 * complete, whatever the pace of the bytes) only once a server emits 'listening': emitted by
 * hand, so a client trickling header bytes is cut after CLIENT_HEADER_TIMEOUT here too. Idle
 * keep-alive connections get KEEPALIVE_TIMEOUT from Node's own per-socket timer.
 */
function createInnerServer(timeouts: MitmTimeouts): http.Server {
  const inner = http.createServer({
    requestTimeout: 0,
    headersTimeout: timeouts.clientHeaderMs,
    keepAliveTimeout: timeouts.keepAliveMs,
    connectionsCheckingInterval: Math.min(30_000, Math.max(100, Math.floor(timeouts.clientHeaderMs / 10))),
  });
  inner.timeout = 0;
  inner.emit('listening');
  inner.on('clientError', (error: Error & { code?: string }, socket: Duplex) => {
    debug('bad request on an intercepted connection: %s', error.code ?? error.message);
    socket.destroy();
  });
  return inner;
}

/** The first bytes of the tunnel (they tell TLS, 0x16, from anything else); undefined: closed. */
function firstChunk(client: Socket, head: Buffer, waitMs: number): Promise<Buffer | undefined> {
  if (head.length > 0) return Promise.resolve(head);
  return new Promise<Buffer | undefined>((resolve) => {
    const finish = (value: Buffer | undefined) => {
      client.off('data', onData);
      client.off('close', onClose);
      client.setTimeout(0);
      resolve(value);
    };
    // Paused synchronously, so no later chunk is emitted before the TLS socket takes over.
    const onData = (data: Buffer) => {
      client.pause();
      finish(data);
    };
    const onClose = () => finish(undefined);
    client.on('data', onData);
    client.once('close', onClose);
    client.setTimeout(waitMs, () => client.destroy());
  });
}

/** Bounds the handshake and the wait for a first request by CLIENT_HEADER_TIMEOUT. */
function boundHandshake(tls: TLSSocket, ms: number): void {
  // Until the first request arrives; after that the inner server's keep-alive timer applies.
  tls.setTimeout(ms, () => tls.destroy());
  if (ms <= 0) return;
  // A handshake trickled byte by byte is never idle: bound it as a whole.
  const handshake = setTimeout(() => tls.destroy(), ms);
  handshake.unref();
  tls.once('secure', () => clearTimeout(handshake));
  tls.once('close', () => clearTimeout(handshake));
}

export function createInterceptor(
  options: Pick<MitmOptions, 'secureContext' | 'timeouts'>,
  hooks: InterceptHooks,
): Interceptor {
  const { timeouts } = options;
  const targets = new WeakMap<Duplex, UpstreamTarget>();
  const tlsSockets = new Set<TLSSocket>();
  const inner = createInnerServer(timeouts);
  inner.on('request', (req: IncomingMessage, res: ServerResponse) => {
    req.socket.setTimeout(0);
    const target = targets.get(req.socket);
    // Cannot happen: every socket the inner server sees was put in the map first.
    if (!target) return void res.writeHead(500).end();
    hooks.request(req, res, target);
  });

  async function intercept(client: Socket, head: Buffer, target: { host: string; port: number }) {
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    const first = await firstChunk(client, head, timeouts.clientHeaderMs);
    if (!first) return;
    client.unshift(first);
    if (first[0] !== 0x16) {
      debug('CONNECT %s:%d is not TLS: tunnelling it', target.host, target.port);
      return hooks.notTls(client, target);
    }
    let context: SecureContext;
    try {
      context = await options.secureContext(target.host);
    } catch (error) {
      debug('no certificate for %s: %s', target.host, (error as Error).message);
      return void client.destroy();
    }
    if (client.destroyed) return;
    const tls = new TLSSocket(client, { isServer: true, secureContext: context });
    targets.set(tls, { host: target.host, port: target.port, protocol: 'https' });
    tlsSockets.add(tls);
    tls.once('close', () => tlsSockets.delete(tls));
    tls.on('error', (error: Error) => {
      // Typically a client that does not trust the CA: it aborts the handshake.
      debug('TLS with client for %s:%d: %s', target.host, target.port, error.message);
      tls.destroy();
    });
    boundHandshake(tls, timeouts.clientHeaderMs);
    inner.emit('connection', tls);
  }

  return {
    intercept,
    destroyAll() {
      // Stops the header-timeout sweep started by the 'listening' emitted above.
      inner.close();
      for (const socket of tlsSockets) socket.destroy();
    },
  };
}
