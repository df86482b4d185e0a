/**
 * MIRROR_TLS_PORT: mirror mode over TLS, so a client's own Basic credentials do not cross the
 * network in clear. The leaf comes from drp's CA, for the name the client asked for (SNI), or
 * for the address it connected to when it sent none (a mirror given as an IP). Requests go to
 * the same handler as the plain port's (the dispatcher: tracking, drain, routing).
 */
import { once } from 'node:events';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import net, { type AddressInfo, type Socket } from 'node:net';
import { type SecureContext, TLSSocket } from 'node:tls';
import createDebug from 'debug';

const debug = createDebug('drp:mirror');

export interface MirrorTlsOptions {
  /** A context presenting drp's leaf for `name` (@drp/ca). */
  secureContext(name: string): Promise<SecureContext>;
  handle(req: IncomingMessage, res: ServerResponse): void;
  /** False for a new client while drp shuts down. */
  accepts(socket: Socket): boolean;
  readonly clientHeaderMs: number;
  readonly keepAliveMs: number;
}

export interface MirrorTlsServer {
  listen(port: number, host: string): Promise<AddressInfo>;
  close(): Promise<void>;
}

export function createMirrorTlsServer(options: MirrorTlsOptions): MirrorTlsServer {
  // Never listens itself: TLS sockets are handed to it, as in front/intercept.ts.
  const inner = http.createServer({ requestTimeout: 0, keepAliveTimeout: options.keepAliveMs });
  inner.timeout = 0;
  inner.on('request', (req: IncomingMessage, res: ServerResponse) => {
    req.socket.setTimeout(0);
    // A mirror, not a proxy: absolute-form requests are not forwarded from this port.
    if (!(req.url ?? '').startsWith('/')) {
      res.writeHead(400, { 'content-type': 'text/plain' }).end('this port serves registry requests only\n');
      return;
    }
    options.handle(req, res);
  });
  inner.on('clientError', (error: Error, socket) => {
    debug('bad request on the TLS mirror port: %s', error.message);
    socket.destroy();
  });
  const sockets = new Set<Socket>();

  const outer = net.createServer((raw) => {
    if (!options.accepts(raw)) {
      raw.destroy();
      return;
    }
    sockets.add(raw);
    raw.once('close', () => sockets.delete(raw));
    raw.on('error', (error) => debug('TLS mirror client: %s', error.message));
    const local = (raw.localAddress ?? '127.0.0.1').replace(/^::ffff:/, '');
    options.secureContext(local).then(
      (fallback) => {
        if (raw.destroyed) return;
        const tls = new TLSSocket(raw, {
          isServer: true,
          secureContext: fallback,
          SNICallback: (name, done) => {
            options.secureContext(name).then(
              (context) => done(null, context),
              (error: Error) => done(error),
            );
          },
        });
        tls.on('error', (error: Error) => {
          debug('TLS with a mirror client: %s', error.message);
          tls.destroy();
        });
        // Until the first request; then the inner server's keep-alive timer applies.
        tls.setTimeout(options.clientHeaderMs, () => tls.destroy());
        inner.emit('connection', tls);
      },
      (error: Error) => {
        debug('no certificate for %s: %s', local, error.message);
        raw.destroy();
      },
    );
  });

  return {
    async listen(port, host) {
      outer.listen(port, host);
      await once(outer, 'listening');
      return outer.address() as AddressInfo;
    },
    async close() {
      const closed = outer.listening ? once(outer, 'close') : undefined;
      outer.close();
      for (const socket of sockets) socket.destroy();
      inner.closeAllConnections();
      await closed;
    },
  };
}
