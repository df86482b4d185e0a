/** Turning a client away: the `refused` record, and the answer on a response or raw socket. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import createDebug from 'debug';
import type { AdmissionKind, Refusal } from './admission.js';
import { clientOf } from './naming.js';
import type { MitmOptions } from './types.js';

const debug = createDebug('drp:mitm');

export interface Refusals {
  /** Reports a refusal (the caller answers it). */
  record(req: IncomingMessage, kind: AdmissionKind, target: string, refusal: Refusal): void;
  /** Reports and answers a refused plain-HTTP request. */
  answer(
    req: IncomingMessage,
    res: ServerResponse,
    kind: AdmissionKind,
    target: string,
    refusal: Refusal,
  ): void;
  /** Runs `then` if `kind` is admitted, answers the refusal otherwise. */
  admitted(
    req: IncomingMessage,
    res: ServerResponse,
    kind: AdmissionKind,
    target: string,
    then: () => void,
  ): void;
}

/** A refusal by egress policy (TUNNEL_PORTS, BLOCKED_DESTINATIONS). */
export function forbidden(reason: string): Refusal {
  return { status: 403, headers: {}, reason };
}

export function createRefusals(options: Pick<MitmOptions, 'admission' | 'onRefused'>): Refusals {
  const record: Refusals['record'] = (req, kind, target, refusal) => {
    debug('refused %s %s from %s: %s', kind, target, clientOf(req.socket), refusal.reason);
    options.onRefused({
      type: 'refused',
      client: clientOf(req.socket),
      kind,
      method: req.method ?? 'GET',
      target,
      status: refusal.status,
      reason: refusal.reason,
    });
  };
  const answer: Refusals['answer'] = (req, res, kind, target, refusal) => {
    record(req, kind, target, refusal);
    const body = `${refusal.reason}\n`;
    res.writeHead(refusal.status, {
      ...refusal.headers,
      'content-type': 'text/plain; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      connection: 'close',
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
  const admitted: Refusals['admitted'] = (req, res, kind, target, then) => {
    options.admission.check(kind, req).then(
      (refusal) => {
        if (refusal) answer(req, res, kind, target, refusal);
        else if (!res.destroyed) then();
      },
      (error: Error) => {
        debug('admission failed: %s', error.message);
        res.destroy();
      },
    );
  };
  return { record, answer, admitted };
}
