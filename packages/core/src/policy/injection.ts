/**
 * When drp may add the central credentials (`AUTH_REGISTRIES`) to a request: only for reads.
 * A client without credentials of its own may pull what the configured account may pull, and
 * nothing more: a write (push, delete) or a token asking for more than `pull` needs the
 * client's own credentials, whatever path or encoding it tries.
 */
import type { Route } from '../api/route.js';

/** Registry routes whose GET and HEAD are reads. */
const READ_ROUTES = new Set<Route['kind']>(['ping', 'blob', 'manifest', 'tags', 'referrers']);

/**
 * True when every scope a token request asks for is `pull` (and it asks for at least one).
 * Scopes: `repository:<name>:<actions>` (also `repository(plugin):...`) and `registry:catalog:*`,
 * space-separated within one `scope` parameter or repeated.
 */
export function isPullOnlyTokenQuery(query: string | undefined): boolean {
  if (!query) return false;
  const scopes = new URLSearchParams(query)
    .getAll('scope')
    .flatMap((value) => value.split(' '))
    .filter((scope) => scope !== '');
  if (scopes.length === 0) return false;
  return scopes.every((scope) => {
    const actions = scope.slice(scope.lastIndexOf(':') + 1);
    return scope.startsWith('repository') && actions.split(',').every((action) => action === 'pull');
  });
}

/** The injection rule for a registry API request (token requests are decided by the caller). */
export function isReadRequest(route: Route, method: string): boolean {
  return (method === 'GET' || method === 'HEAD') && READ_ROUTES.has(route.kind);
}
