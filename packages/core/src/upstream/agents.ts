/**
 * Keep-alive agents that can connect a host to another address (`upstream.mappings`, the
 * original's users' #103) while TLS still verifies, and SNI still names, the original host.
 * Mapping at the socket level means redirect targets (a CDN host) are mapped too.
 */
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import tls from 'node:tls';
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

class MappedHttpsAgent extends https.Agent {
  readonly #map: Mapper;
  constructor(options: https.AgentOptions, map: Mapper) {
    super(options);
    this.#map = map;
  }
  // Node calls createConnection(options, callback); the base one adds TLS session reuse.
  override createConnection(
    options: ConnectOptions,
    callback?: (err: Error | null, socket: Socket) => void,
  ): Socket {
    return baseCreateConnection(https.Agent.prototype).call(this, remap(this.#map, options, 443), callback);
  }
}

class MappedHttpAgent extends http.Agent {
  readonly #map: Mapper;
  constructor(options: http.AgentOptions, map: Mapper) {
    super(options);
    this.#map = map;
  }
  override createConnection(
    options: ConnectOptions,
    callback?: (err: Error | null, socket: Socket) => void,
  ): Socket {
    return baseCreateConnection(http.Agent.prototype).call(this, remap(this.#map, options, 80), callback);
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
  const ca =
    upstream.caCertificates.length > 0 ? [...tls.rootCertificates, ...upstream.caCertificates] : undefined;
  const httpsAgent = new MappedHttpsAgent(
    { ...common, rejectUnauthorized: upstream.verifyTls, ...(ca ? { ca } : {}) },
    map,
  );
  const httpAgent = new MappedHttpAgent(common, map);
  return {
    http: httpAgent,
    https: httpsAgent,
    destroy() {
      httpAgent.destroy();
      httpsAgent.destroy();
    },
  };
}
