/**
 * Idle protection for clients that stall (nginx's send_timeout and client_body_timeout), read
 * from the socket's own byte counters: nothing is wrapped or patched.
 *
 * Send: data is queued for the client and nothing has moved for `sendMs`: the client stopped
 * reading. "Moved" is the socket's bytesWritten (drp handed it more) or the kernel taking bytes
 * from the handle's write queue (libuv's writeQueueSize, on the TLS socket and on the TCP
 * socket under it): one res.end(buffer) of many megabytes is a single queued write, so
 * bytesWritten alone would not show a slow reader's progress. A response waiting for upstream
 * has nothing queued and is never cut.
 *
 * Body: the request announced a body and the socket's bytesRead has not moved for `bodyMs`
 * while drp was waiting for bytes (drp pausing the body for backpressure does not count).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import createDebug from 'debug';

const debug = createDebug('drp:mitm');

/** How often the send watch looks: a fraction of the timeout, within bounds. */
function tickFor(ms: number): number {
  return Math.min(1000, Math.max(20, Math.floor(ms / 5)));
}

type Stopper = [emitter: { once(event: string, listener: () => void): unknown }, event: string];

/** Runs `check` every `ms` until one of `until` happens (or `check` stops it). */
function every(ms: number, until: readonly Stopper[], check: (stop: () => void) => void): void {
  const timer = setInterval(() => check(stop), ms);
  timer.unref();
  function stop() {
    clearInterval(timer);
  }
  for (const [emitter, event] of until) emitter.once(event, stop);
}

/** The parts of a socket the send watch reads; `_handle` and `_parent` are Node internals. */
interface Transport {
  readonly bytesWritten: number;
  readonly writableLength: number;
  readonly _handle?: { readonly writeQueueSize?: number } | null;
  /** The TCP socket under a TLSSocket made from one. */
  readonly _parent?: Transport | null;
}

/** Counters that change whenever bytes move toward the client, and whether any are queued. */
function progressOf(socket: Transport): { mark: string; queued: boolean } {
  const marks: number[] = [];
  let queued = false;
  for (let s: Transport | null | undefined = socket; s; s = s._parent) {
    const inKernelQueue = s._handle?.writeQueueSize ?? 0;
    marks.push(s.bytesWritten, s.writableLength, inKernelQueue);
    queued ||= s.writableLength > 0 || inKernelQueue > 0;
  }
  return { mark: marks.join(','), queued };
}

export function watchSendStall(res: ServerResponse, sendMs: number): void {
  if (sendMs <= 0) return;
  const socket = res.socket as Transport | null;
  if (!socket) return;
  let seen = progressOf(socket).mark;
  let since = Date.now();
  const until: Stopper[] = [
    [res, 'finish'],
    [res, 'close'],
  ];
  every(tickFor(sendMs), until, (stop) => {
    const now = progressOf(socket);
    if (now.mark !== seen || !(now.queued || res.writableLength > 0)) {
      seen = now.mark;
      since = Date.now();
      return;
    }
    if (Date.now() - since < sendMs) return;
    debug('client did not read for %dms: closing', sendMs);
    stop();
    res.destroy();
  });
}

export function watchBodyStall(req: IncomingMessage, res: ServerResponse, bodyMs: number): void {
  const hasBody =
    req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
  if (bodyMs <= 0 || !hasBody || req.complete) return;
  // Watches the socket's byte count instead of listening for 'data': a data listener would
  // switch the body to flowing mode before the handler pipes it, and lose bytes.
  const socket = req.socket;
  let seen = socket.bytesRead;
  const until: Stopper[] = [
    [req, 'end'],
    [req, 'close'],
  ];
  every(bodyMs, until, (halt) => {
    if (req.complete || req.destroyed) return halt();
    const now = socket.bytesRead;
    const waiting = req.readableFlowing !== false && req.readableLength === 0;
    // Only a client that stops sending counts; drp pausing the body (backpressure) does not.
    if (now === seen && waiting) {
      debug('client sent no body bytes for %dms: closing', bodyMs);
      halt();
      req.destroy();
      res.destroy();
    }
    seen = now;
  });
}

/** Both watches, for a request drp serves. */
export function watchStalls(req: IncomingMessage, res: ServerResponse, sendMs: number, bodyMs: number): void {
  watchSendStall(res, sendMs);
  watchBodyStall(req, res, bodyMs);
}
