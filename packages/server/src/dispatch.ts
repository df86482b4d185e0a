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
 */
import { once } from 'node:events';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import net, { type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type SecureContext, TLSSocket } from 'node:tls';
import { endToEndHeaders, parseHostPort, type UpstreamTarget } from '@drp/core';
import createDebug from 'debug';
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

/** Parses a CONNECT request target: `host:port` or `[v6]:port` (the port is required). */
export function parseConnectTarget(url: string | undefined): { host: string; port: number } | undefined {
  if (!url || !/:\d{1,5}$/.test(url)) return undefined;
  return parseHostPort(url);
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

  // Never listens: TLS-terminated sockets are handed to it. Node only runs its periodic
  // header/request timeout checks for listening servers, so those are set per socket below.
  const inner = http.createServer({ requestTimeout: 0, keepAliveTimeout: timeouts.keepAliveMs });
  inner.timeout = 0;

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
  inner.on('clientError', (error: Error, socket: Duplex) => {
    debug('bad request on an intercepted connection: %s', error.message);
    socket.destroy();
  });

  function request(req: IncomingMessage, res: ServerResponse): void {
    track(req, res);
    const url = req.url ?? '/';
    if (url.startsWith('/')) {
      if (options.onMirrorRequest && isMirrorPath(url)) {
        watchStalls(req, res, timeouts.sendMs, timeouts.clientBodyMs);
        options.onMirrorRequest(req, res);
      } else options.onDirectRequest(req, res);
      return;
    }
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      res.writeHead(400, { 'content-type': 'text/plain' }).end('bad request target\n');
      return;
    }
    if (parsed.protocol !== 'http:') {
      res
        .writeHead(400, { 'content-type': 'text/plain' })
        .end('only http:// URLs can be proxied without CONNECT\n');
      return;
    }
    const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
    const port = parsed.port ? Number(parsed.port) : 80;
    if (options.intercepts(host, port, 'http')) {
      req.url = `${parsed.pathname}${parsed.search}`;
      watchStalls(req, res, timeouts.sendMs, timeouts.clientBodyMs);
      options.onRegistryRequest(req, res, { host, port, protocol: 'http' });
      return;
    }
    void forward(req, res, host, port, `${parsed.pathname}${parsed.search}`);
  }

  function connect(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const client = socket as Socket;
    client.setTimeout(0);
    client.on('error', (error) => debug('client socket error: %s', error.message));
    const target = parseConnectTarget(req.url);
    if (!target) {
      client.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    if (options.intercepts(target.host, target.port, 'https')) {
      void intercept(client, head, target);
    } else {
      tunnel(client, head, target, false);
    }
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
    inner.emit('connection', tls);
  }

  function tunnel(
    client: Socket,
    head: Buffer,
    target: { host: string; port: number },
    established: boolean,
  ): void {
    const started = performance.now();
    const where = options.resolveAddress(target.host, target.port);
    const name = hostKey(target.host, target.port);
    const peer = clientOf(client);
    let error: string | undefined;
    let logged = false;
    let connected = false;
    client.pause();
    const upstream = net.connect({
      host: where.host,
      port: where.port,
      allowHalfOpen: true,
      ...(options.family ? { family: options.family } : {}),
    });
    tunnels.add(client);
    clientBusy(peer, 1);
    const done = () => {
      if (logged) return;
      logged = true;
      tunnels.delete(client);
      clientBusy(peer, -1);
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
      error ??= e.code ?? e.message;
      debugTunnel('tunnel to %s: %s', name, error);
      // Before the tunnel opened, the client still waits for an answer to its CONNECT.
      if (!connected && !established && client.writable) {
        client.end('HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n');
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
    const upstream = http.request({
      host: where.host,
      port: where.port,
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
      for (const socket of tunnels) socket.destroy();
      for (const socket of tlsSockets) socket.destroy();
      forwardAgent.destroy();
    },
  };
}
