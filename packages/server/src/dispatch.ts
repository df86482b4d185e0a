/**
 * What drp does with each connection and request the listening front (mitm.ts) hands it: TLS
 * termination for intercepted hosts on one in-process HTTP server, raw tunnels, plain-HTTP
 * forwarding, and the bookkeeping a graceful drain needs. Nothing here listens on a port.
 *
 *   CONNECT host:port, intercepted  ->  "200 Connection Established", then a TLSSocket with the
 *                                       leaf for `host` from @drp/ca is handed to the inner server
 *                                       with emit('connection'); the upstream of every request on
 *                                       it is the CONNECT target (a WeakMap), never `Host`.
 *   CONNECT host:port, other        ->  raw TCP tunnel, bytes untouched, logged when it closes.
 *   GET http://host/... (absolute)  ->  intercepted host: served by the registry handler;
 *                                       other: forwarded with backpressure.
 *   GET /v2/... (origin-form)       ->  mirror mode (mirror.ts), when onMirrorRequest is set.
 *   GET /path (origin-form)         ->  drp's own endpoints (or 404); never proxied, so no loop.
 *
 * Every CONNECT, absolute-form and endpoint request is first admitted (front/admission.ts:
 * ALLOWED_CLIENTS, PROXY_AUTH); tunnels and forwards then only reach allowed ports
 * (TUNNEL_PORTS) and addresses (BLOCKED_DESTINATIONS, checked on the resolved address).
 */
import { once } from 'node:events';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import net, { type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type SecureContext, TLSSocket } from 'node:tls';
import { DESTINATION_BLOCKED, type DestinationGuard, endToEndHeaders, type UpstreamTarget } from '@drp/core';
import createDebug from 'debug';
import type { Admission, AdmissionKind, Refusal } from './front/admission.js';
import { parseAbsoluteTarget, parseConnectTarget } from './front/target.js';

export { parseConnectTarget };

import { isMirrorPath } from './mirror.js';

const debug = createDebug('drp:mitm');
const debugTunnel = createDebug('drp:tunnel');

/** A finished raw tunnel or forwarded plain-HTTP request, for the access log. */
export interface TunnelRecord {
  readonly type: 'tunnel';
  readonly client: string;
  /** `host:port` as the client asked for it. */
  readonly host: string;
  /** Bytes from the client to upstream, and from upstream to the client. */
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly ms: number;
  /** Set when the tunnel could not be opened. */
  readonly error: string | undefined;
  /** True for an intercepted host whose client did not speak TLS inside the tunnel. */
  readonly notTls: boolean;
}

export interface ForwardRecord {
  readonly type: 'forward';
  readonly client: string;
  readonly method: string;
  readonly host: string;
  /** Path without the query string. */
  readonly path: string;
  readonly status: number;
  readonly bytes: number;
  readonly ms: number;
  readonly error: string | undefined;
}

/** A client turned away before anything was proxied (admission or egress policy). */
export interface RefusedRecord {
  readonly type: 'refused';
  readonly client: string;
  readonly kind: AdmissionKind;
  readonly method: string;
  /** `host:port` for proxy requests, the path (no query) for endpoints. */
  readonly target: string;
  readonly status: number;
  readonly reason: string;
}

export interface MitmTimeouts {
  readonly clientHeaderMs: number;
  readonly keepAliveMs: number;
  readonly sendMs: number;
  readonly clientBodyMs: number;
  readonly tunnelIdleMs: number;
  readonly tunnelConnectMs: number;
}

export interface MitmOptions {
  /** Whether host:port is intercepted (`http` for absolute-form plain-HTTP requests). */
  intercepts(host: string, port: number, scheme: 'https' | 'http'): boolean;
  /** The TLS context presenting the leaf for `name` (from @drp/ca). */
  secureContext(name: string): Promise<SecureContext>;
  /** An intercepted request; the handler owns the response. */
  onRegistryRequest(req: IncomingMessage, res: ServerResponse, target: UpstreamTarget): void;
  /** An origin-form request to the proxy itself (`/`, `/ca.crt`, ...). */
  onDirectRequest(req: IncomingMessage, res: ServerResponse): void;
  /** An origin-form `/v2/...` request: mirror mode (mirror.ts). */
  onMirrorRequest?(req: IncomingMessage, res: ServerResponse): void;
  onTunnel(record: TunnelRecord): void;
  onForward(record: ForwardRecord): void;
  onRefused(record: RefusedRecord): void;
  /** Who may use the proxy (ALLOWED_CLIENTS, PROXY_AUTH). */
  admission: Admission;
  /** Where tunnels and forwards may connect (BLOCKED_DESTINATIONS). */
  destinations: DestinationGuard;
  /** Ports raw CONNECT tunnels may reach (TUNNEL_PORTS). */
  tunnelPorts: ReadonlySet<number> | '*';
  /** Where to really connect for host:port (UPSTREAM_MAPPINGS), for tunnels and forwards. */
  resolveAddress(host: string, port: number): { host: string; port: number };
  /** IP family for tunnels and forwards (DISABLE_IPV6 -> 4). */
  family: 4 | 6 | undefined;
  timeouts: MitmTimeouts;
}

/** The per-connection logic, driven by the listening front. */
export interface Dispatcher {
  /** A CONNECT request; the dispatcher owns `socket` from now on. */
  connect(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** A plain-HTTP request on the listening front (origin-form or absolute-form). */
  request(req: IncomingMessage, res: ServerResponse): void;
  /** False for a new client while draining, unless it is in the middle of a pull. */
  accepts(socket: Socket): boolean;
  /** Requests being served plus open tunnels, right now. */
  readonly activeRequests: number;
  readonly openTunnels: number;
  /**
   * Starts refusing new clients and waits until nothing has moved for `quietMs`, or `graceMs`
   * has passed. A pull is many requests over several connections: clients with a request or
   * tunnel in flight (or one that ended within `quietMs`) may still connect meanwhile.
   */
  drain(graceMs: number, quietMs: number): Promise<void>;
  /** Closes every tunnel and TLS connection and the forwarding agent. */
  destroyAll(): void;
}

function clientOf(socket: Duplex | undefined): string {
  const s = socket as Partial<Socket> | undefined;
  const address = s?.remoteAddress;
  if (!address) return '-';
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

function hostKey(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  407: 'Proxy Authentication Required',
};

/** A whole answer on a raw socket (CONNECT), then close. */
function statusLine(status: number, headers: Readonly<Record<string, string>> = {}): string {
  const extra = Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  return `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\n${extra}connection: close\r\ncontent-length: 0\r\n\r\n`;
}

/** Sends `socket.setTimeout` style idle protection for a response the client stops reading. */
function watchStalls(req: IncomingMessage, res: ServerResponse, sendMs: number, bodyMs: number): void {
  if (sendMs > 0) {
    let timer: NodeJS.Timeout | undefined;
    const disarm = () => {
      if (timer) clearTimeout(timer);
      timer = undefined;
    };
    const arm = () => {
      if (timer) return;
      timer = setTimeout(() => {
        debug('client did not read for %dms: closing', sendMs);
        res.destroy();
      }, sendMs);
      timer.unref();
    };
    const write = res.write.bind(res) as (...args: unknown[]) => boolean;
    res.write = ((...args: unknown[]) => {
      const ok = write(...args);
      if (!ok) arm();
      return ok;
    }) as typeof res.write;
    res.on('drain', disarm);
    res.once('finish', disarm);
    res.once('close', disarm);
  }
  const hasBody =
    req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
  if (bodyMs > 0 && hasBody && !req.complete) {
    // Watches the socket's byte count instead of listening for 'data': a data listener would
    // switch the body to flowing mode before the handler pipes it, and lose bytes.
    const socket = req.socket;
    let seen = socket.bytesRead;
    const timer = setInterval(() => {
      if (req.complete || req.destroyed) return stop();
      const now = socket.bytesRead;
      const waiting = req.readableFlowing !== false && req.readableLength === 0;
      // Only a client that stops sending counts; drp pausing the body (backpressure) does not.
      if (now === seen && waiting) {
        debug('client sent no body bytes for %dms: closing', bodyMs);
        stop();
        req.destroy();
        res.destroy();
      }
      seen = now;
    }, bodyMs);
    timer.unref();
    function stop() {
      clearInterval(timer);
    }
    req.once('end', stop);
    req.once('close', stop);
  }
}

export function createDispatcher(options: MitmOptions): Dispatcher {
  const { timeouts } = options;
  const targets = new WeakMap<Duplex, UpstreamTarget>();
  const tunnels = new Set<Socket>();
  const tlsSockets = new Set<TLSSocket>();
  let active = 0;
  let draining = false;
  /** Per client address: requests and tunnels in flight, and when the last one ended. */
  const clients = new Map<string, { active: number; lastSeen: number }>();
  let quietWindowMs = 1000;
  let lastActivityAt = 0;
  let lastPrune = 0;
  const clientBusy = (address: string, delta: 1 | -1) => {
    const entry = clients.get(address) ?? { active: 0, lastSeen: 0 };
    entry.active += delta;
    entry.lastSeen = Date.now();
    lastActivityAt = entry.lastSeen;
    clients.set(address, entry);
    // Idle entries are kept for a while (a drain starting now must know who just finished a
    // request), and dropped lazily so the map stays small.
    if (clients.size > 256 && !draining && entry.lastSeen - lastPrune > 1000) {
      lastPrune = entry.lastSeen;
      for (const [key, value] of clients) {
        if (value.active <= 0 && entry.lastSeen - value.lastSeen > 10_000) clients.delete(key);
      }
    }
  };
  const recentClient = (address: string) => {
    const entry = clients.get(address);
    return entry !== undefined && (entry.active > 0 || Date.now() - entry.lastSeen < quietWindowMs);
  };
  const forwardAgent = new http.Agent({
    keepAlive: true,
    ...(options.family ? { family: options.family } : {}),
  });

  // Never listens: TLS-terminated sockets are handed to it. Node tracks connections and runs its
  // periodic headersTimeout sweep (the time from a request's first byte until its head is
  // complete, whatever the pace of the bytes) only once a server emits 'listening': emitted by
  // hand, so a client trickling header bytes is cut after CLIENT_HEADER_TIMEOUT here too.
  // Idle keep-alive connections get KEEPALIVE_TIMEOUT from Node's own per-socket timer.
  const inner = http.createServer({
    requestTimeout: 0,
    headersTimeout: timeouts.clientHeaderMs,
    keepAliveTimeout: timeouts.keepAliveMs,
    connectionsCheckingInterval: Math.min(30_000, Math.max(100, Math.floor(timeouts.clientHeaderMs / 10))),
  });
  inner.timeout = 0;
  inner.emit('listening');

  const track = (req: IncomingMessage, res: ServerResponse) => {
    const client = clientOf(req.socket);
    active += 1;
    clientBusy(client, 1);
    res.once('close', () => {
      active -= 1;
      clientBusy(client, -1);
    });
  };

  inner.on('request', (req: IncomingMessage, res: ServerResponse) => {
    track(req, res);
    req.socket.setTimeout(0);
    const target = targets.get(req.socket);
    if (!target) {
      // Cannot happen: every socket the inner server sees was put in the map first.
      res.writeHead(500).end();
      return;
    }
    watchStalls(req, res, timeouts.sendMs, timeouts.clientBodyMs);
    options.onRegistryRequest(req, res, target);
  });
  inner.on('clientError', (error: Error & { code?: string }, socket: Duplex) => {
    debug('bad request on an intercepted connection: %s', error.code ?? error.message);
    socket.destroy();
  });

  const refused = (req: IncomingMessage, kind: AdmissionKind, target: string, refusal: Refusal) => {
    debug('refused %s %s from %s: %s', kind, target, clientOf(req.socket), refusal.reason);
    options.onRefused({
      type: 'refused',
      client: clientOf(req.socket),
      kind,
      method: req.method ?? 'GET',
      target,
      status: refusal.status,
      reason: refusal.reason,
    });
  };

  /** Answers a refused plain-HTTP request. */
  const refuse = (
    req: IncomingMessage,
    res: ServerResponse,
    kind: AdmissionKind,
    target: string,
    refusal: Refusal,
  ) => {
    refused(req, kind, target, refusal);
    const body = `${refusal.reason}\n`;
    res.writeHead(refusal.status, {
      ...refusal.headers,
      'content-type': 'text/plain; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      connection: 'close',
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  };

  /** Runs `then` if `kind` is admitted, answers the refusal otherwise. */
  const admitted = (
    req: IncomingMessage,
    res: ServerResponse,
    kind: AdmissionKind,
    target: string,
    then: () => void,
  ) => {
    options.admission.check(kind, req).then(
      (refusal) => {
        if (refusal) refuse(req, res, kind, target, refusal);
        else if (!res.destroyed) then();
      },
      (error: Error) => {
        debug('admission failed: %s', error.message);
        res.destroy();
      },
    );
  };

  function request(req: IncomingMessage, res: ServerResponse): void {
    track(req, res);
    const url = req.url ?? '/';
    if (url.startsWith('/')) {
      const path = url.split('?')[0] ?? '/';
      const mirror = options.onMirrorRequest;
      if (mirror && isMirrorPath(url)) {
        // Mirror mode: the same admission as proxy requests (ALLOWED_CLIENTS, PROXY_AUTH).
        admitted(req, res, 'mirror', path, () => {
          watchStalls(req, res, timeouts.sendMs, timeouts.clientBodyMs);
          mirror(req, res);
        });
      } else admitted(req, res, 'endpoint', path, () => options.onDirectRequest(req, res));
      return;
    }
    const parsed = parseAbsoluteTarget(url);
    if ('error' in parsed) {
      res.writeHead(400, { 'content-type': 'text/plain' }).end(`${parsed.error}\n`);
      return;
    }
    const { host, port, path } = parsed;
    admitted(req, res, 'absolute', hostKey(host, port), () => {
      if (options.intercepts(host, port, 'http')) {
        // The raw path, unchanged: core parses it (one reading of the path, not two).
        req.url = path;
        watchStalls(req, res, timeouts.sendMs, timeouts.clientBodyMs);
        options.onRegistryRequest(req, res, { host, port, protocol: 'http' });
        return;
      }
      void forward(req, res, host, port, path);
    });
  }

  function connect(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const client = socket as Socket;
    client.setTimeout(0);
    client.on('error', (error) => debug('client socket error: %s', error.message));
    const target = parseConnectTarget(req.url);
    if (!target) {
      client.end(statusLine(400));
      return;
    }
    const name = hostKey(target.host, target.port);
    const turnAway = (refusal: Refusal) => {
      refused(req, 'connect', name, refusal);
      client.end(statusLine(refusal.status, refusal.headers));
    };
    // Whatever the client sends meanwhile (its TLS hello) waits in the socket: nothing reads it.
    options.admission.check('connect', req).then(
      (refusal) => {
        if (client.destroyed) return;
        if (refusal) return turnAway(refusal);
        if (options.intercepts(target.host, target.port, 'https')) {
          void intercept(client, head, target);
          return;
        }
        const ports = options.tunnelPorts;
        if (ports !== '*' && !ports.has(target.port)) {
          return turnAway({ status: 403, headers: {}, reason: 'port not allowed (TUNNEL_PORTS)' });
        }
        tunnel(client, head, target, false, req);
      },
      (error: Error) => {
        debug('admission failed: %s', error.message);
        client.destroy();
      },
    );
  }

  async function intercept(
    client: Socket,
    head: Buffer,
    target: { host: string; port: number },
  ): Promise<void> {
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    let first = head;
    if (first.length === 0) {
      // The first byte tells TLS (0x16, a handshake record) from anything else.
      const chunk = await new Promise<Buffer | undefined>((resolve) => {
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
        client.setTimeout(timeouts.clientHeaderMs, () => client.destroy());
      });
      if (!chunk) return;
      first = chunk;
    }
    client.unshift(first);
    if (first[0] !== 0x16) {
      debug('CONNECT %s:%d is not TLS: tunnelling it', target.host, target.port);
      tunnel(client, Buffer.alloc(0), target, true);
      return;
    }
    let context: SecureContext;
    try {
      context = await options.secureContext(target.host);
    } catch (error) {
      debug('no certificate for %s: %s', target.host, (error as Error).message);
      client.destroy();
      return;
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
    // Until the first request arrives; after that the inner server's keep-alive timer applies.
    tls.setTimeout(timeouts.clientHeaderMs, () => tls.destroy());
    if (timeouts.clientHeaderMs > 0) {
      // A handshake trickled byte by byte is never idle: bound it as a whole.
      const handshake = setTimeout(() => tls.destroy(), timeouts.clientHeaderMs);
      handshake.unref();
      tls.once('secure', () => clearTimeout(handshake));
      tls.once('close', () => clearTimeout(handshake));
    }
    inner.emit('connection', tls);
  }

  function tunnel(
    client: Socket,
    head: Buffer,
    target: { host: string; port: number },
    established: boolean,
    req?: IncomingMessage,
  ): void {
    const started = performance.now();
    const where = options.resolveAddress(target.host, target.port);
    const name = hostKey(target.host, target.port);
    const peer = clientOf(client);
    let error: string | undefined;
    let logged = false;
    let connected = false;
    client.pause();
    const plan = options.destinations.plan(target.host, target.port, where.host);
    if (plan.refused) {
      const refusal: Refusal = { status: 403, headers: {}, reason: plan.refused.message };
      if (req) refused(req, 'connect', name, refusal);
      if (!established && client.writable) client.end(statusLine(403));
      else client.destroy();
      return;
    }
    const upstream = net.connect({
      host: where.host,
      port: where.port,
      allowHalfOpen: true,
      ...(options.family ? { family: options.family } : {}),
      ...(plan.lookup ? { lookup: plan.lookup } : {}),
    });
    tunnels.add(client);
    clientBusy(peer, 1);
    let silent = false;
    const done = () => {
      if (logged) return;
      logged = true;
      tunnels.delete(client);
      clientBusy(peer, -1);
      if (silent) return;
      options.onTunnel({
        type: 'tunnel',
        client: peer,
        host: name,
        bytesIn: upstream.bytesWritten,
        bytesOut: upstream.bytesRead,
        ms: Math.round(performance.now() - started),
        error,
        notTls: established,
      });
    };
    const connectTimer =
      timeouts.tunnelConnectMs > 0
        ? setTimeout(
            () => upstream.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' })),
            timeouts.tunnelConnectMs,
          )
        : undefined;
    upstream.once('connect', () => {
      connected = true;
      if (connectTimer) clearTimeout(connectTimer);
      debugTunnel('tunnel to %s (%s:%d) open', name, where.host, where.port);
      if (!established) client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      if (timeouts.tunnelIdleMs > 0) {
        const idle = () => {
          debugTunnel('tunnel to %s idle for %dms: closing', name, timeouts.tunnelIdleMs);
          client.destroy();
          upstream.destroy();
        };
        client.setTimeout(timeouts.tunnelIdleMs, idle);
        upstream.setTimeout(timeouts.tunnelIdleMs, idle);
      }
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
    upstream.on('error', (e: Error & { code?: string }) => {
      if (connectTimer) clearTimeout(connectTimer);
      if (e.code === DESTINATION_BLOCKED && req && !connected) {
        // Refused on the address the name resolved to: a refusal line, not a tunnel line.
        refused(req, 'connect', name, { status: 403, headers: {}, reason: e.message });
        silent = true;
      }
      error ??= e.code ?? e.message;
      debugTunnel('tunnel to %s: %s', name, error);
      // Before the tunnel opened, the client still waits for an answer to its CONNECT.
      if (!connected && !established && client.writable) {
        client.end(
          e.code === DESTINATION_BLOCKED
            ? statusLine(403)
            : 'HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n',
        );
      } else client.destroy();
    });
    client.once('close', () => {
      upstream.destroy();
      done();
    });
    upstream.once('close', () => {
      if (client.writableEnded) return;
      client.end();
      // Half-closed clients that never close their side are cut after a short grace.
      setTimeout(() => client.destroy(), 5000).unref();
    });
  }

  async function forward(
    req: IncomingMessage,
    res: ServerResponse,
    host: string,
    port: number,
    path: string,
  ) {
    const started = performance.now();
    const where = options.resolveAddress(host, port);
    const record = (status: number, bytes: number, error: string | undefined) =>
      options.onForward({
        type: 'forward',
        client: clientOf(req.socket),
        method: req.method ?? 'GET',
        host: hostKey(host, port),
        path: path.split('?')[0] ?? path,
        status,
        bytes,
        ms: Math.round(performance.now() - started),
        error,
      });
    const plan = options.destinations.plan(host, port, where.host);
    if (plan.refused) {
      refuse(req, res, 'absolute', hostKey(host, port), {
        status: 403,
        headers: {},
        reason: plan.refused.message,
      });
      return;
    }
    const upstream = http.request({
      host: where.host,
      port: where.port,
      ...(plan.lookup ? { lookup: plan.lookup } : {}),
      method: req.method,
      path,
      headers: {
        ...endToEndHeaders(req.headers),
        host: port === 80 ? hostKey(host, port).slice(0, -3) : hostKey(host, port),
      },
      agent: forwardAgent,
      timeout: timeouts.tunnelConnectMs || undefined,
    });
    upstream.once('timeout', () =>
      upstream.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })),
    );
    let bytes = 0;
    try {
      const responded = once(upstream, 'response') as Promise<[IncomingMessage]>;
      responded.catch(() => {}); // the pipeline below reports the same error
      await pipeline(req, upstream);
      const [response] = await responded;
      upstream.setTimeout(0);
      res.writeHead(response.statusCode ?? 502, endToEndHeaders(response.headers));
      response.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
      });
      await pipeline(response, res);
      record(response.statusCode ?? 502, bytes, undefined);
    } catch (error) {
      const code = (error as { code?: string }).code ?? (error as Error).message;
      upstream.destroy();
      if (code === DESTINATION_BLOCKED && !res.headersSent) {
        refuse(req, res, 'absolute', hostKey(host, port), {
          status: 403,
          headers: {},
          reason: (error as Error).message,
        });
        return;
      }
      if (!res.headersSent) {
        res
          .writeHead(502, { 'content-type': 'text/plain' })
          .end(`upstream ${hostKey(host, port)} failed: ${code}\n`);
      } else res.destroy();
      record(res.statusCode, bytes, code);
    }
  }

  function tunnelBytes(): number {
    let total = 0;
    for (const s of tunnels) total += s.bytesRead + s.bytesWritten;
    return total;
  }
  return {
    connect,
    request,
    accepts(socket) {
      if (!draining || recentClient(clientOf(socket))) return true;
      debug('shutting down: refusing a new client %s', clientOf(socket));
      return false;
    },
    get activeRequests() {
      return active;
    },
    get openTunnels() {
      return tunnels.size;
    },
    async drain(graceMs, quietMs) {
      draining = true;
      quietWindowMs = quietMs;
      const deadline = Date.now() + graceMs;
      let moved = tunnelBytes();
      // An idle proxy stops at once; one that just answered waits for the client's next request.
      let quietSince = lastActivityAt;
      while (Date.now() < deadline) {
        const now = tunnelBytes();
        if (active > 0 || now !== moved) quietSince = Date.now();
        moved = now;
        if (Date.now() - quietSince >= quietMs) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      if (active > 0) debug('shutdown: %d requests still running after %dms: closing them', active, graceMs);
    },
    destroyAll() {
      // Stops the header-timeout sweep started by the 'listening' emitted above.
      inner.close();
      for (const socket of tunnels) socket.destroy();
      for (const socket of tlsSockets) socket.destroy();
      forwardAgent.destroy();
    },
  };
}
