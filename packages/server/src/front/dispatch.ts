/**
 * What drp does with each connection and request the listening front (mitm.ts) hands it.
 * Nothing here listens on a port.
 *
 *   CONNECT host:port, intercepted  ->  TLS termination onto the inner server (intercept.ts)
 *   CONNECT host:port, other        ->  raw TCP tunnel (tunnel.ts), bytes untouched
 *   GET http://host/... (absolute)  ->  intercepted host: served by the registry handler;
 *                                       other: forwarded with backpressure (forward.ts)
 *   GET /v2/... (origin-form)       ->  mirror mode (mirror.ts), when onMirrorRequest is set
 *   GET /path (origin-form)         ->  drp's own endpoints (or 404); never proxied, so no loop
 *
 * Every CONNECT, absolute-form and endpoint request is first admitted (admission.ts:
 * ALLOWED_CLIENTS, PROXY_AUTH); tunnels and forwards then only reach allowed ports
 * (TUNNEL_PORTS) and addresses (BLOCKED_DESTINATIONS). Requests drp serves get the stall watch
 * (stall-watch.ts); every request and tunnel is counted for the drain (activity.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { UpstreamTarget } from '@drp/core';
import createDebug from 'debug';
import { isMirrorPath } from '../mirror.js';
import { createActivity } from './activity.js';
import type { Refusal } from './admission.js';
import { createForwarder } from './forward.js';
import { createInterceptor } from './intercept.js';
import { hostKey, statusLine } from './naming.js';
import { createRefusals, forbidden } from './refusal.js';
import { watchStalls } from './stall-watch.js';
import { parseAbsoluteTarget, parseConnectTarget } from './target.js';
import { createTunnels } from './tunnel.js';
import type { Dispatcher, MitmOptions } from './types.js';

const debug = createDebug('drp:mitm');

/** A factory over 60 lines: its parts are the small closures inside, sharing the collaborators. */
export function createDispatcher(options: MitmOptions): Dispatcher {
  const { timeouts } = options;
  const activity = createActivity();
  const refusals = createRefusals(options);
  const tunnel = createTunnels(options, activity, refusals);
  const forwarder = createForwarder(options, refusals);
  /** A request drp serves itself: watched for stalled clients, then handed on. */
  const serve = (req: IncomingMessage, res: ServerResponse, then: () => void) => {
    watchStalls(req, res, timeouts.sendMs, timeouts.clientBodyMs);
    then();
  };
  const interceptor = createInterceptor(options, {
    request(req, res, target: UpstreamTarget) {
      activity.track(req, res);
      serve(req, res, () => options.onRegistryRequest(req, res, target));
    },
    notTls: (client, target) => tunnel({ client, head: Buffer.alloc(0), target, established: true }),
  });

  function request(req: IncomingMessage, res: ServerResponse): void {
    activity.track(req, res);
    const url = req.url ?? '/';
    if (url.startsWith('/')) {
      originForm(req, res, url);
      return;
    }
    const parsed = parseAbsoluteTarget(url);
    if ('error' in parsed) {
      res.writeHead(400, { 'content-type': 'text/plain' }).end(`${parsed.error}\n`);
      return;
    }
    const { host, port, path } = parsed;
    refusals.admitted(req, res, 'absolute', hostKey(host, port), () => {
      if (!options.intercepts(host, port, 'http')) return void forwarder.forward(req, res, host, port, path);
      // The raw path, unchanged: core parses it (one reading of the path, not two).
      req.url = path;
      serve(req, res, () => options.onRegistryRequest(req, res, { host, port, protocol: 'http' }));
    });
  }

  function originForm(req: IncomingMessage, res: ServerResponse, url: string): void {
    const path = url.split('?')[0] ?? '/';
    const mirror = options.onMirrorRequest;
    if (mirror && isMirrorPath(url)) {
      // Mirror mode: the same admission as proxy requests (ALLOWED_CLIENTS, PROXY_AUTH).
      refusals.admitted(req, res, 'mirror', path, () => serve(req, res, () => mirror(req, res)));
    } else refusals.admitted(req, res, 'endpoint', path, () => options.onDirectRequest(req, res));
  }

  function connect(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const client = socket as Socket;
    client.setTimeout(0);
    client.on('error', (error) => debug('client socket error: %s', error.message));
    const target = parseConnectTarget(req.url);
    if (!target) return void client.end(statusLine(400));
    const name = hostKey(target.host, target.port);
    const turnAway = (refusal: Refusal) => {
      refusals.record(req, 'connect', name, refusal);
      client.end(statusLine(refusal.status, refusal.headers));
    };
    // Whatever the client sends meanwhile (its TLS hello) waits in the socket: nothing reads it.
    options.admission.check('connect', req).then(
      (refusal) => {
        if (client.destroyed) return;
        if (refusal) return turnAway(refusal);
        if (options.intercepts(target.host, target.port, 'https')) {
          return void interceptor.intercept(client, head, target);
        }
        const ports = options.tunnelPorts;
        if (ports !== '*' && !ports.has(target.port)) {
          return turnAway(forbidden('port not allowed (TUNNEL_PORTS)'));
        }
        tunnel({ client, head, target, established: false, req });
      },
      (error: Error) => {
        debug('admission failed: %s', error.message);
        client.destroy();
      },
    );
  }

  return {
    connect,
    request,
    accepts: (socket) => activity.accepts(socket),
    get activeRequests() {
      return activity.active;
    },
    get openTunnels() {
      return activity.tunnels.size;
    },
    drain: (graceMs, quietMs) => activity.drain(graceMs, quietMs),
    destroyAll() {
      interceptor.destroyAll();
      for (const socket of activity.tunnels) socket.destroy();
      forwarder.destroy();
    },
  };
}
