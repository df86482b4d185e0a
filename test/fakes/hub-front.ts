// A front that speaks the Docker Hub protocol in front of a real (open) registry: Bearer token
// challenges naming a token realm, tokens checked against the token server, rate-limit headers,
// and 429 TOOMANYREQUESTS once more than `limit` manifest GETs were made (HEADs are free, as on
// Docker Hub). `down` turns every answer into a 503.
import type { Front, Harness, Registry } from '../harness/index.ts';
import type { TokenServer } from './token-server.ts';

export interface HubFront extends Front {
  /** Manifest GETs counted against the limit so far. */
  pulls(): number;
  /** Manifest GETs allowed before 429s start (Infinity: none). */
  limit: number;
  /** Answer everything with 503 (an outage). */
  down: boolean;
}

export async function startHubFront(
  h: Harness,
  opts: { upstream: Registry; tokens: TokenServer; limit: number; name?: string },
): Promise<HubFront> {
  let pulls = 0;
  const state = { limit: opts.limit, down: false };
  const name = opts.name ?? 'hub.test';
  const front = await h.startFront({
    upstream: opts.upstream,
    names: [name],
    onRequest: async (req, res, forward) => {
      const path = (req.url ?? '/').split('?')[0] ?? '/';
      if (state.down) {
        res.writeHead(503, { 'content-type': 'text/plain' }).end('service unavailable');
        return;
      }
      const repo = /^\/v2\/(.+)\/(?:manifests|blobs)\//.exec(path)?.[1];
      const token = req.headers.authorization?.replace(/^Bearer /, '');
      if (!token || !opts.tokens.isValid(token)) {
        const scope = repo ? `,scope="repository:${repo}:pull"` : '';
        res.writeHead(401, {
          'content-type': 'application/json',
          'www-authenticate': `Bearer realm="${opts.tokens.realm}",service="${opts.tokens.service}"${scope}`,
        });
        res.end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
        return;
      }
      const remaining = Math.max(0, state.limit - pulls);
      const rate = {
        'ratelimit-limit': `${state.limit};w=21600`,
        'ratelimit-remaining': `${remaining};w=21600`,
      };
      if (path.includes('/manifests/') && req.method === 'GET') {
        if (pulls >= state.limit) {
          const body =
            '{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit. You may increase the limit by authenticating and upgrading: https://www.docker.com/increase-rate-limit"}]}';
          res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '21600', ...rate });
          res.end(body);
          return;
        }
        pulls += 1;
      }
      // The registry behind is open; it must not see the front's tokens. Host is rewritten because
      // Node derives the TLS server name from it, and the registry's certificate lacks our name.
      await forward({
        headers: { authorization: undefined, host: opts.upstream.hostPort },
        responseHeaders: rate,
      });
    },
  });
  // Accessors, so that tests flip `limit` and `down` on the live front.
  return Object.defineProperties(front, {
    pulls: { value: () => pulls },
    limit: {
      get: () => state.limit,
      set: (v: number) => {
        state.limit = v;
      },
    },
    down: {
      get: () => state.down,
      set: (v: boolean) => {
        state.down = v;
      },
    },
  }) as HubFront;
}
