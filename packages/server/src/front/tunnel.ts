/**
 * Raw CONNECT tunnels (hosts not intercepted, and intercepted ones whose client does not speak
 * TLS): bytes untouched, only to allowed addresses (BLOCKED_DESTINATIONS, checked on the
 * resolved address), closed when idle, logged when they close.
 */
import type { IncomingMessage } from 'node:http';
import net, { type Socket } from 'node:net';
import { DESTINATION_BLOCKED } from '@drp/core';
import createDebug from 'debug';
import type { Activity } from './activity.js';
import { clientOf, hostKey, statusLine } from './naming.js';
import { forbidden, type Refusals } from './refusal.js';
import type { MitmOptions } from './types.js';

const debug = createDebug('drp:tunnel');

export type TunnelOptions = Pick<
  MitmOptions,
  'resolveAddress' | 'destinations' | 'family' | 'timeouts' | 'onTunnel'
>;

export interface TunnelRequest {
  readonly client: Socket;
  readonly head: Buffer;
  readonly target: { readonly host: string; readonly port: number };
  /** True when "200 Connection Established" was already sent (an intercepted non-TLS client). */
  readonly established: boolean;
  /** The CONNECT request, for refusal records (absent for an intercepted non-TLS client). */
  readonly req?: IncomingMessage;
}

/** Closes both sides when neither has moved for `idleMs`. */
function closeWhenIdle(client: Socket, upstream: Socket, idleMs: number, name: string): void {
  if (idleMs <= 0) return;
  const idle = () => {
    debug('tunnel to %s idle for %dms: closing', name, idleMs);
    client.destroy();
    upstream.destroy();
  };
  client.setTimeout(idleMs, idle);
  upstream.setTimeout(idleMs, idle);
}

/** Fails the connect after `ms` (0: never). */
function connectTimer(upstream: Socket, ms: number): NodeJS.Timeout | undefined {
  if (ms <= 0) return undefined;
  return setTimeout(
    () => upstream.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' })),
    ms,
  );
}

interface TunnelState {
  error: string | undefined;
  connected: boolean;
  /** A refusal was logged instead: no tunnel line. */
  silent: boolean;
  logged: boolean;
}

/** What one tunnel's handlers share. */
interface Open extends TunnelRequest {
  readonly upstream: Socket;
  readonly name: string;
  readonly where: { readonly host: string; readonly port: number };
  readonly state: TunnelState;
  readonly timer: NodeJS.Timeout | undefined;
}

export function createTunnels(options: TunnelOptions, activity: Activity, refusals: Refusals) {
  const { timeouts } = options;

  function opened(t: Open): void {
    t.state.connected = true;
    if (t.timer) clearTimeout(t.timer);
    debug('tunnel to %s (%s:%d) open', t.name, t.where.host, t.where.port);
    if (!t.established) t.client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (t.head.length > 0) t.upstream.write(t.head);
    closeWhenIdle(t.client, t.upstream, timeouts.tunnelIdleMs, t.name);
    t.client.pipe(t.upstream);
    t.upstream.pipe(t.client);
    t.client.resume();
  }

  function failed(t: Open, e: Error & { code?: string }): void {
    if (t.timer) clearTimeout(t.timer);
    if (e.code === DESTINATION_BLOCKED && t.req && !t.state.connected) {
      // Refused on the address the name resolved to: a refusal line, not a tunnel line.
      refusals.record(t.req, 'connect', t.name, forbidden(e.message));
      t.state.silent = true;
    }
    t.state.error ??= e.code ?? e.message;
    debug('tunnel to %s: %s', t.name, t.state.error);
    // Before the tunnel opened, the client still waits for an answer to its CONNECT.
    if (!t.state.connected && !t.established && t.client.writable) {
      t.client.end(
        e.code === DESTINATION_BLOCKED
          ? statusLine(403)
          : 'HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n',
      );
    } else t.client.destroy();
  }

  function closed(t: Open, peer: string, started: number): void {
    t.upstream.destroy();
    if (t.state.logged) return;
    t.state.logged = true;
    activity.tunnel(t.client, peer, -1);
    if (t.state.silent) return;
    options.onTunnel({
      type: 'tunnel',
      client: peer,
      host: t.name,
      bytesIn: t.upstream.bytesWritten,
      bytesOut: t.upstream.bytesRead,
      ms: Math.round(performance.now() - started),
      error: t.state.error,
      notTls: t.established,
    });
  }

  return function tunnel(request: TunnelRequest): void {
    const { client, target, established, req } = request;
    const started = performance.now();
    const where = options.resolveAddress(target.host, target.port);
    const name = hostKey(target.host, target.port);
    const peer = clientOf(client);
    client.pause();
    const plan = options.destinations.plan(target.host, target.port, where.host);
    if (plan.refused) {
      if (req) refusals.record(req, 'connect', name, forbidden(plan.refused.message));
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
    activity.tunnel(client, peer, 1);
    const state: TunnelState = { error: undefined, connected: false, silent: false, logged: false };
    const t: Open = {
      ...request,
      upstream,
      name,
      where,
      state,
      timer: connectTimer(upstream, timeouts.tunnelConnectMs),
    };
    upstream.once('connect', () => opened(t));
    upstream.on('error', (e: Error & { code?: string }) => failed(t, e));
    client.once('close', () => closed(t, peer, started));
    upstream.once('close', () => {
      if (client.writableEnded) return;
      client.end();
      // Half-closed clients that never close their side are cut after a short grace.
      setTimeout(() => client.destroy(), 5000).unref();
    });
  };
}
