/**
 * What a graceful drain needs to know: requests in flight, open tunnels and the bytes they
 * move, and per client address whether it is in the middle of a pull (a request or tunnel in
 * flight, or one that ended within the quiet window), so it may still connect while draining.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import createDebug from 'debug';
import { clientOf } from './naming.js';

const debug = createDebug('drp:mitm');

export interface Activity {
  /** Counts a request until its response closes. */
  track(req: IncomingMessage, res: ServerResponse): void;
  /** A tunnel opened (+1) or closed (-1) for `client`. */
  tunnel(socket: Socket, client: string, delta: 1 | -1): void;
  readonly tunnels: ReadonlySet<Socket>;
  readonly active: number;
  readonly draining: boolean;
  accepts(socket: Socket): boolean;
  drain(graceMs: number, quietMs: number): Promise<void>;
}

interface ClientEntry {
  active: number;
  lastSeen: number;
}

/** A factory over 60 lines: the counters and the small methods that share them. */
export function createActivity(): Activity {
  const tunnels = new Set<Socket>();
  const clients = new Map<string, ClientEntry>();
  let active = 0;
  let draining = false;
  let quietWindowMs = 1000;
  let lastActivityAt = 0;
  let lastPrune = 0;

  const busy = (address: string, delta: 1 | -1) => {
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
  const tunnelBytes = () => {
    let total = 0;
    for (const s of tunnels) total += s.bytesRead + s.bytesWritten;
    return total;
  };

  return {
    track(req, res) {
      const client = clientOf(req.socket);
      active += 1;
      busy(client, 1);
      res.once('close', () => {
        active -= 1;
        busy(client, -1);
      });
    },
    tunnel(socket, client, delta) {
      if (delta === 1) tunnels.add(socket);
      else tunnels.delete(socket);
      busy(client, delta);
    },
    tunnels,
    get active() {
      return active;
    },
    get draining() {
      return draining;
    },
    accepts(socket) {
      if (!draining || recentClient(clientOf(socket))) return true;
      debug('shutting down: refusing a new client %s', clientOf(socket));
      return false;
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
  };
}
