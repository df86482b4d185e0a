/**
 * The method policy and the injection decision, made once per request from its route. With
 * push off, only GET and HEAD ever reach upstream, on any path (as in the original, which
 * answers 405 to everything else); with push on, the push methods go through, without the
 * central credentials. Any other method (OPTIONS, TRACE...) is refused (docs/security.md).
 */
import type { Route } from '../api/route.js';
import type { RequestType } from '../events.js';
import { isPullOnlyTokenQuery, isReadRequest } from '../policy/injection.js';
import { type HandlerName, ROUTES } from './routes.js';

/** Methods a push uses; anything else but the table's reads is refused (never sent upstream). */
const PUSH_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export type Refusal = 'method-not-allowed' | 'push-disabled';

export interface Decision {
  readonly requestType: RequestType;
  /** The handler that serves the request, or why it is refused without asking upstream. */
  readonly handler: HandlerName | Refusal;
  /** Whether the central credentials may be added (reads and pull-only token requests). */
  readonly inject: boolean;
}

export interface PolicyInput {
  readonly route: Route;
  readonly method: string;
  readonly query: string | undefined;
  readonly allowPush: boolean;
  /** Whether a GET outside /v2/ goes to a token realm an upstream challenge named. */
  readonly isTokenRequest: () => boolean;
}

export function decide(input: PolicyInput): Decision {
  const { route, method } = input;
  const entry = ROUTES[route.kind];
  const push = PUSH_METHODS.has(method);
  const requestType = entry.requestType(route, push);
  const token = route.kind === 'other' && method === 'GET' && input.isTokenRequest();
  const inject = isReadRequest(route, method) || (token && isPullOnlyTokenQuery(input.query));
  return { requestType, inject, handler: handlerFor(input, push, token) };
}

function handlerFor(input: PolicyInput, push: boolean, token: boolean): HandlerName | Refusal {
  const { route, method } = input;
  if (push) return input.allowPush ? 'push' : 'push-disabled';
  const entry = ROUTES[route.kind];
  if (!entry.methods.has(method)) return 'method-not-allowed';
  // A pushing client HEADs each blob to learn whether *this repository upstream* has it; a
  // cached copy (from any repository or registry) would make it skip the upload and the
  // manifest PUT fail with BLOB_UNKNOWN. With push allowed, blob HEADs ask upstream.
  if (route.kind === 'blob' && method === 'HEAD' && input.allowPush) return 'passthrough';
  if (token) return 'token';
  return entry.handler;
}
