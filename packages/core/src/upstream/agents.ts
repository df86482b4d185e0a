/**
 * Keep-alive agents that can connect a host to another address (`upstream.mappings`, the
 * original's users' #103) while TLS still verifies, and SNI still names, the original host.
 * Mapping at the socket level means redirect targets (a CDN host) are mapped too, and so is
 * the destination guard (BLOCKED_DESTINATIONS): every direct connection, redirect hops
 * included, is checked here, on the address it really goes to.
 *
 * With an upstream proxy (`upstream.proxy`), every connection not bypassed by `noProxy` is a
 * CONNECT tunnel through it (hpagent), naming the mapped address when there is a mapping; TLS
 * then runs end to end inside the tunnel, verified against the original name with the same
 * CAs, so the proxy sees only which host:port drp talks to. Through the proxy, the proxy
 * resolves names: drp still refuses a blocked address literal, and the proxy's own address is
 * exempt (a local cntlm on 127.0.0.1 must work).
 */
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import tls from 'node:tls';
import { HttpProxyAgent, HttpsProxyAgent } from 'hpagent';
import type { DestinationGuard } from '../net/destination-guard.js';
import type { ResolvedUpstream } from '../options.js';
import { lookupMapping } from './mappings.js';
import { proxyError, type UpstreamProxy } from './proxy.js';

type Mapper = (host: string, port: number) => { host: string; port: number } | undefined;

export function createMapper(upstream: ResolvedUpstream): Mapper {
  return (host, port) => lookupMapping(upstream.mappings, host, port);
}

interface ConnectOptions {
  host?: string | null;
  port?: number | string | null;
  servername?: string;
  [key: string]: unknown;
}

function remap(map: Mapper, options: ConnectOptions, defaultPort: number): ConnectOptions {
  const host = String(options.host ?? 'localhost');
  const port = Number(options.port ?? defaultPort);
  const target = map(host, port);
  if (!target) return options;
  // servername was computed from the original host before we got here; keep it.
  return { ...options, host: target.host, port: target.port };
}

type CreateConnection = (
  this: http.Agent,
  options: ConnectOptions,
  callback?: (err: Error | null, socket: Socket) => void,
) => Socket;

// The typings do not declare https.Agent#createConnection, though Node has it.
function baseCreateConnection(proto: http.Agent): CreateConnection {
  return (proto as unknown as { createConnection: CreateConnection }).createConnection;
}

type Callback = (err: Error | null, socket: Socket) => void;

/** hpagent needs a proxy URL even when there is none; it is then never used. */
const NO_PROXY_URL = 'http://unused.invalid';

/** What a mapped agent needs to decide, per connection, between direct and the proxy. */
interface Route {
  readonly map: Mapper;
  readonly proxy: UpstreamProxy | undefined;
  readonly bypass: (host: string, port: number) => boolean;
  /** How long the CONNECT exchange may take. */
  readonly connectTimeoutMs: number;
  readonly guard: DestinationGuard;
}

/**
 * One connection: mapped, then direct or through the proxy. `direct` is the plain agent's
 * createConnection, `tunnel` hpagent's (which then runs `direct`'s TLS over the tunnel).
 */
function connect(
  route: Route,
  options: ConnectOptions,
  defaultPort: number,
  callback: Callback | undefined,
  direct: (options: ConnectOptions, callback?: Callback) => Socket | undefined,
  tunnel: (options: ConnectOptions, callback: Callback) => void,
): Socket | undefined {
  const host = String(options.host ?? 'localhost');
  const port = Number(options.port ?? defaultPort);
  const mapped = remap(route.map, options, defaultPort);
  const proxy = route.proxy;
  const viaProxy = proxy !== undefined && !route.bypass(host, port) && callback !== undefined;
  let guarded = mapped;
  if (route.guard.active) {
    const plan = route.guard.plan(host, port, String(mapped.host));
    if (plan.refused) {
      const refused = plan.refused;
      if (callback) process.nextTick(() => callback(refused, undefined as unknown as Socket));
      return undefined;
    }
    // Direct: resolve through the guard. Through the proxy, the proxy resolves the name.
    if (plan.lookup && !viaProxy) guarded = { ...mapped, lookup: plan.lookup };
  }
  if (!viaProxy || !proxy || !callback) return direct(guarded, callback);
  // hpagent writes `CONNECT ${host}:${port}`: an IPv6 address needs its brackets there, and TLS
  // (which checks an IP-literal host against the certificate) must then see it without them.
  const v6 = String(mapped.host).includes(':');
  const bracketed = v6
    ? {
        host: `[${String(mapped.host)}]`,
        checkServerIdentity: (name: string, cert: tls.PeerCertificate) =>
          tls.checkServerIdentity(name.replace(/^\[(.*)\]$/, '$1'), cert),
      }
    : {};
  const where = `${v6 ? `[${String(mapped.host)}]` : String(mapped.host)}:${String(mapped.port ?? port)}`;
  // hpagent puts `timeout` on its CONNECT request; the TLS socket it then makes gets it too,
  // as an idle timer, which got's own timeouts replace: it is cleared once connected.
  tunnel({ ...mapped, ...bracketed, timeout: route.connectTimeoutMs }, (error, socket) => {
    if (error) return callback(proxyError(proxy, where, error), socket);
    socket.setTimeout(0);
    callback(null, socket);
  });
  return undefined;
}

class MappedHttpsAgent extends HttpsProxyAgent {
  readonly #route: Route;
  constructor(options: https.AgentOptions, route: Route) {
    super({ ...options, proxy: route.proxy?.url ?? NO_PROXY_URL });
    this.#route = route;
  }
  // Node calls createConnection(options, callback); the base one adds TLS session reuse.
  override createConnection(options: ConnectOptions, callback?: Callback): Socket {
    return connect(
      this.#route,
      options,
      443,
      callback,
      (o, cb) => baseCreateConnection(https.Agent.prototype).call(this, o, cb),
      (o, cb) => super.createConnection(o as never, cb as never),
    ) as Socket;
  }
}

class MappedHttpAgent extends HttpProxyAgent {
  readonly #route: Route;
  constructor(options: http.AgentOptions, route: Route) {
    super({ ...options, proxy: route.proxy?.url ?? NO_PROXY_URL });
    this.#route = route;
  }
  override createConnection(options: ConnectOptions, callback?: Callback): Socket {
    return connect(
      this.#route,
      options,
      80,
      callback,
      (o, cb) => baseCreateConnection(http.Agent.prototype).call(this, o, cb),
      (o, cb) => super.createConnection(o as never, cb as never),
    ) as Socket;
  }
}

export interface UpstreamAgents {
  readonly http: http.Agent;
  readonly https: https.Agent;
  destroy(): void;
}

export function createAgents(upstream: ResolvedUpstream): UpstreamAgents {
  const map = createMapper(upstream);
  const common = { keepAlive: true, keepAliveMsecs: 30_000, maxFreeSockets: 64, scheduling: 'lifo' as const };
  // One TLS context for the agent's whole life: given `ca` instead, Node builds a context from
  // the whole bundle (Node's roots + extra) on every new connection, a CPU and memory sink.
  const secureContext =
    upstream.caCertificates.length > 0
      ? tls.createSecureContext({ ca: [...tls.rootCertificates, ...upstream.caCertificates] })
      : undefined;
  const route: Route = {
    map,
    proxy: upstream.proxy,
    bypass: (host, port) => upstream.noProxy.bypasses(host, port),
    connectTimeoutMs: upstream.connectTimeoutMs,
    guard: upstream.destinations,
  };
  const httpsAgent = new MappedHttpsAgent(
    { ...common, rejectUnauthorized: upstream.verifyTls, ...(secureContext ? { secureContext } : {}) },
    route,
  );
  const httpAgent = new MappedHttpAgent(common, route);
  return {
    http: httpAgent,
    https: httpsAgent,
    destroy() {
      httpAgent.destroy();
      httpsAgent.destroy();
    },
  };
}
