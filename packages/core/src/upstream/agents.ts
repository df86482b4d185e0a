/**
 * Keep-alive agents that can connect a host to another address (`upstream.mappings`, the
 * original's users' #103) while TLS still verifies, and SNI still names, the original host.
 * Mapping at the socket level means redirect targets (a CDN host) are mapped too, and so is
 * the destination guard (BLOCKED_DESTINATIONS): every connection, redirect hops included, is
 * checked here, on the address it really goes to.
 */
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import tls from 'node:tls';
import type { DestinationGuard } from '../net/destination-guard.js';
import type { ResolvedUpstream } from '../options.js';

type Mapper = (host: string, port: number) => { host: string; port: number } | undefined;

export function createMapper(upstream: ResolvedUpstream): Mapper {
  return (host, port) => {
    const key = host.toLowerCase().replace(/^\[(.*)\]$/, '$1');
    const exact = upstream.mappings.get(`${key}:${port}`);
    if (exact) return exact;
    const anyPort = upstream.mappings.get(key);
    if (anyPort) return { host: anyPort.host, port: anyPort.port || port };
    return undefined;
  };
}

interface ConnectOptions {
  host?: string | null;
  port?: number | string | null;
  servername?: string;
  [key: string]: unknown;
}

type Callback = (err: Error | null, socket: Socket) => void;

/**
 * Maps and guards one connection. Returns the options to connect with, or undefined after
 * handing the refusal to `callback` (Node's Agent then fails the request with it).
 */
function prepare(
  map: Mapper,
  guard: DestinationGuard,
  options: ConnectOptions,
  defaultPort: number,
  callback: Callback | undefined,
): ConnectOptions | undefined {
  const host = String(options.host ?? 'localhost');
  const port = Number(options.port ?? defaultPort);
  const target = map(host, port);
  // servername was computed from the original host before we got here; keep it.
  const mapped = target ? { ...options, host: target.host, port: target.port } : options;
  if (!guard.active) return mapped;
  const plan = guard.plan(host, port, String(mapped.host));
  if (plan.refused) {
    const refused = plan.refused;
    if (callback) process.nextTick(() => callback(refused, undefined as unknown as Socket));
    return undefined;
  }
  return plan.lookup ? { ...mapped, lookup: plan.lookup } : mapped;
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

class MappedHttpsAgent extends https.Agent {
  readonly #map: Mapper;
  readonly #guard: DestinationGuard;
  constructor(options: https.AgentOptions, map: Mapper, guard: DestinationGuard) {
    super(options);
    this.#map = map;
    this.#guard = guard;
  }
  // Node calls createConnection(options, callback); the base one adds TLS session reuse.
  override createConnection(
    options: ConnectOptions,
    callback?: (err: Error | null, socket: Socket) => void,
  ): Socket {
    const prepared = prepare(this.#map, this.#guard, options, 443, callback);
    if (!prepared) return undefined as unknown as Socket;
    return baseCreateConnection(https.Agent.prototype).call(this, prepared, callback);
  }
}

class MappedHttpAgent extends http.Agent {
  readonly #map: Mapper;
  readonly #guard: DestinationGuard;
  constructor(options: http.AgentOptions, map: Mapper, guard: DestinationGuard) {
    super(options);
    this.#map = map;
    this.#guard = guard;
  }
  override createConnection(
    options: ConnectOptions,
    callback?: (err: Error | null, socket: Socket) => void,
  ): Socket {
    const prepared = prepare(this.#map, this.#guard, options, 80, callback);
    if (!prepared) return undefined as unknown as Socket;
    return baseCreateConnection(http.Agent.prototype).call(this, prepared, callback);
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
  const httpsAgent = new MappedHttpsAgent(
    { ...common, rejectUnauthorized: upstream.verifyTls, ...(secureContext ? { secureContext } : {}) },
    map,
    upstream.destinations,
  );
  const httpAgent = new MappedHttpAgent(common, map, upstream.destinations);
  return {
    http: httpAgent,
    https: httpsAgent,
    destroy() {
      httpAgent.destroy();
      httpsAgent.destroy();
    },
  };
}
