/**
 * Idle protection for clients that stall (nginx's send_timeout and client_body_timeout), read
 * from the socket's own byte counters: nothing is wrapped or patched.
 *
 * Send: data is queued for the client (the response's or the socket's writableLength > 0) and
 * the socket's bytesWritten has not moved for `sendMs`: the client stopped reading. This covers
 * bodies written in one res.end(buffer) as well as streamed ones; a response waiting for
 * upstream has nothing queued and is never cut.
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

export function watchSendStall(res: ServerResponse, sendMs: number): void {
  if (sendMs <= 0) return;
  const socket = res.socket;
  if (!socket) return;
  let seen = socket.bytesWritten;
  let since = Date.now();
  const until: Stopper[] = [
    [res, 'finish'],
    [res, 'close'],
  ];
  every(tickFor(sendMs), until, (stop) => {
    const now = socket.bytesWritten;
    const queued = res.writableLength + socket.writableLength > 0;
    if (now !== seen || !queued) {
      seen = now;
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
