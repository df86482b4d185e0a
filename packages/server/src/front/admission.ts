/**
 * Who may use the proxy: the one decision the front asks for every CONNECT, absolute-form
 * request, mirror request and request to drp's own endpoints.
 *
 *   ALLOWED_CLIENTS   the client's address must be in one of these ranges (`all`: anyone)
 *   PROXY_AUTH(_FILE) proxy requests need `Proxy-Authorization: Basic` (else 407), endpoints
 *                     `Authorization: Basic` (else 401), with the same credentials
 *
 * /ca.crt and /healthz are open to everyone: a client needs the CA before it can be set up,
 * and health checkers carry no credentials.
 */
import type { IncomingMessage } from 'node:http';
import { type CidrList, plainAddress } from '@drp/core';
import type { CredentialCheck } from './proxy-auth.js';

export type AdmissionKind = 'connect' | 'absolute' | 'mirror' | 'endpoint';

export interface Refusal {
  readonly status: 401 | 403 | 407;
  readonly headers: Readonly<Record<string, string>>;
  /** Why, for the log line: `client not allowed`, `proxy authentication required`, ... */
  readonly reason: string;
}

export interface Admission {
  /** Undefined when `req` may go on; otherwise the answer to give. */
  check(kind: AdmissionKind, req: IncomingMessage): Promise<Refusal | undefined>;
}

export interface AdmissionOptions {
  /** ALLOWED_CLIENTS; `all` lets every address in. */
  readonly allowedClients: CidrList | 'all';
  /** PROXY_AUTH / PROXY_AUTH_FILE; undefined: no credentials needed. */
  readonly credentials: CredentialCheck | undefined;
}

/** Endpoints every client may reach, whatever ALLOWED_CLIENTS and PROXY_AUTH say. */
export const OPEN_ENDPOINTS: ReadonlySet<string> = new Set(['/ca.crt', '/healthz']);

const REALM = 'Basic realm="drp"';

export function createAdmission(options: AdmissionOptions): Admission {
  const { allowedClients, credentials } = options;
  return {
    async check(kind, req): Promise<Refusal | undefined> {
      if (kind === 'endpoint' && OPEN_ENDPOINTS.has((req.url ?? '/').split('?')[0] ?? '/')) return undefined;
      if (allowedClients !== 'all') {
        const address = plainAddress(req.socket.remoteAddress ?? '');
        if (!allowedClients.contains(address)) {
          return { status: 403, headers: {}, reason: 'client not allowed (ALLOWED_CLIENTS)' };
        }
      }
      if (!credentials) return undefined;
      if (kind === 'endpoint') {
        if (await credentials.verify(req.headers.authorization)) return undefined;
        return {
          status: 401,
          headers: { 'www-authenticate': REALM },
          reason: req.headers.authorization ? 'wrong credentials' : 'authentication required',
        };
      }
      if (await credentials.verify(req.headers['proxy-authorization'])) return undefined;
      return {
        status: 407,
        headers: { 'proxy-authenticate': REALM },
        reason: req.headers['proxy-authorization']
          ? 'wrong proxy credentials'
          : 'proxy authentication required',
      };
    },
  };
}
