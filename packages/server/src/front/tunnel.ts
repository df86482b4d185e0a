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

export function createTunnels(options: TunnelOptions, activity: Activity, refusals: Refusals) {
  const { timeouts } = options;

  return function tunnel({ client, head, target, established, req }: TunnelRequest): void {
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
    const state = { error: undefined as string | undefined, connected: false, silent: false, logged: false };
    const timer = connectTimer(upstream, timeouts.tunnelConnectMs);
    upstream.once('connect', () => {
      state.connected = true;
      if (timer) clearTimeout(timer);
      debug('tunnel to %s (%s:%d) open', name, where.host, where.port);
      if (!established) client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      closeWhenIdle(client, upstream, timeouts.tunnelIdleMs, name);
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
    upstream.on('error', (e: Error & { code?: string }) => {
      if (timer) clearTimeout(timer);
      if (e.code === DESTINATION_BLOCKED && req && !state.connected) {
        // Refused on the address the name resolved to: a refusal line, not a tunnel line.
        refusals.record(req, 'connect', name, forbidden(e.message));
        state.silent = true;
      }
      state.error ??= e.code ?? e.message;
      debug('tunnel to %s: %s', name, state.error);
      // Before the tunnel opened, the client still waits for an answer to its CONNECT.
      if (!state.connected && !established && client.writable) {
        client.end(
          e.code === DESTINATION_BLOCKED
            ? statusLine(403)
            : 'HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n',
        );
      } else client.destroy();
    });
    client.once('close', () => {
      upstream.destroy();
      if (state.logged) return;
      state.logged = true;
      activity.tunnel(client, peer, -1);
      if (state.silent) return;
      options.onTunnel({
        type: 'tunnel',
        client: peer,
        host: name,
        bytesIn: upstream.bytesWritten,
        bytesOut: upstream.bytesRead,
        ms: Math.round(performance.now() - started),
        error: state.error,
        notTls: established,
      });
    });
    upstream.once('close', () => {
      if (client.writableEnded) return;
      client.end();
      // Half-closed clients that never close their side are cut after a short grace.
      setTimeout(() => client.destroy(), 5000).unref();
    });
  };
}
