/** The front's contract with proxy.ts: what it is given, and the records it reports. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { SecureContext } from 'node:tls';
import type { DestinationGuard, UpstreamTarget } from '@drp/core';
import type { Admission, AdmissionKind } from './admission.js';

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
