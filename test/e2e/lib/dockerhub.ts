// A Docker Hub look-alike in front of a real distribution registry, speaking Docker Hub's
// protocol as clients and drp see it:
//
//  - registry-1.docker.io (a harness front): every /v2 request needs a Bearer token from the
//    realm on a separate host, `WWW-Authenticate: Bearer realm="https://auth.docker.io/token",
//    service="registry.docker.io",scope="repository:NAME:pull"`; private repositories need a
//    token issued to an account. Manifest GETs count as pulls (HEADs do not): responses carry
//    `ratelimit-limit: N;w=21600` and `ratelimit-remaining: R;w=21600`, and pull N+1 of an
//    account (anonymous is one account here) is a 429 with a TOOMANYREQUESTS error body. Blob
//    GETs and HEADs are 307 redirects to the CDN host with a signed, expiring query string.
//  - auth.docker.io: `GET /token?service=&scope=` (Basic credentials optional) returns
//    `{ token, access_token, expires_in, issued_at }`; wrong credentials are a 401.
//  - production.cloudflare.docker.com (a harness front): serves a blob only for a valid, unexpired
//    signature, and, like S3 with query-string auth, refuses a request that also carries an
//    `Authorization` header (a proxy that leaked the registry token to the CDN fails here).
//
// The registry behind it must be started with `names: [HUB_REGISTRY]`. The three hosts listen on 127.0.0.1 with test-CA certificates for their real names; drp
// reaches them through UPSTREAM_MAPPINGS (`mappings`).
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Front, Harness, HttpsServer, Registry } from '../../harness/index.ts';

export const HUB_REGISTRY = 'registry-1.docker.io';
export const HUB_AUTH = 'auth.docker.io';
export const HUB_CDN = 'production.cloudflare.docker.com';
export const HUB_SERVICE = 'registry.docker.io';

export interface DockerHubOptions {
  /** Manifest GETs allowed per account (anonymous is one account) before 429s. Default 100. */
  pullLimit?: number;
  /** Repositories (`acme/private`) that only an authenticated account may pull. */
  privateRepos?: string[];
  /** Accounts for auth.docker.io: username → password. */
  users?: Record<string, string>;
  /** Lifetime of the CDN's signed URLs (default 20 minutes, like Docker Hub's). */
  urlTtlMs?: number;
  /** Lifetime of tokens (default 300 s). */
  tokenTtlSeconds?: number;
}

export interface IssuedToken {
  /** The account, or 'anonymous'. */
  subject: string;
  /** `repository:NAME:pull` for every scope granted. */
  granted: string[];
  /** Scopes asked for. */
  requested: string[];
}

export interface DockerHub {
  registry: Front;
  auth: HttpsServer;
  cdn: Front;
  /** `registry-1.docker.io=127.0.0.1:P auth.docker.io=127.0.0.1:P production.cloudflare.docker.com=127.0.0.1:P` */
  mappings: string;
  /** Every token issued, in order. */
  tokens: IssuedToken[];
  /** Manifest GETs counted against the limit per account so far. */
  pulls(subject?: string): number;
  /** 429 answers sent so far. */
  refused(): number;
  /** Forget every account's count (a new rate-limit window). */
  resetLimits(): void;
  /** Signs a CDN URL path for a repository and digest (to test the CDN's checks themselves). */
  signedBlobUrl(repo: string, digest: string, expiresAt?: number): string;
}

interface TokenClaims {
  sub: string;
  access: { name: string; actions: string[] }[];
  exp: number;
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

function errorBody(code: string, message: string, detail?: unknown): string {
  return JSON.stringify({ errors: [{ code, message, detail }] });
}

export async function startDockerHub(
  h: Harness,
  upstream: Registry,
  opts: DockerHubOptions = {},
): Promise<DockerHub> {
  if (!upstream.names.includes(HUB_REGISTRY)) {
    // The front keeps the client's Host, and Node checks the upstream certificate against it.
    throw new Error(`start the registry behind Docker Hub with names: ['${HUB_REGISTRY}']`);
  }
  const key = randomBytes(32);
  const limit = opts.pullLimit ?? 100;
  const privateRepos = new Set(opts.privateRepos ?? []);
  const users = opts.users ?? {};
  const urlTtlMs = opts.urlTtlMs ?? 20 * 60_000;
  const tokenTtl = opts.tokenTtlSeconds ?? 300;
  const tokens: IssuedToken[] = [];
  const pullCounts = new Map<string, number>();
  let refused = 0;

  const hmac = (text: string) => createHmac('sha256', key).update(text).digest();
  const sign = (claims: TokenClaims) => {
    const payload = b64url(JSON.stringify(claims));
    return `${payload}.${b64url(hmac(payload))}`;
  };
  const verifyToken = (token: string): TokenClaims | undefined => {
    const [payload = '', sig = ''] = token.split('.');
    const expected = hmac(payload);
    const given = Buffer.from(sig, 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as TokenClaims;
    return claims.exp * 1000 > Date.now() ? claims : undefined;
  };

  // --- auth.docker.io ---
  const auth = await h.startHttpsServer(
    (req: IncomingMessage, res: ServerResponse) => {
      const url = new URL(req.url ?? '/', `https://${HUB_AUTH}`);
      if (url.pathname !== '/token' || req.method !== 'GET') {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"details":"not found"}');
        return;
      }
      let subject = 'anonymous';
      const header = req.headers.authorization;
      if (header) {
        const [scheme = '', value = ''] = header.split(' ');
        const [user = '', ...rest] = Buffer.from(value, 'base64').toString('utf8').split(':');
        const password = rest.join(':');
        if (scheme.toLowerCase() !== 'basic' || users[user] === undefined || users[user] !== password) {
          res
            .writeHead(401, { 'content-type': 'application/json' })
            .end('{"details":"incorrect username or password"}');
          return;
        }
        subject = user;
      }
      if (url.searchParams.get('service') !== HUB_SERVICE) {
        res.writeHead(400, { 'content-type': 'application/json' }).end('{"details":"invalid service"}');
        return;
      }
      const requested = url.searchParams
        .getAll('scope')
        .flatMap((s) => s.split(' '))
        .filter(Boolean);
      const access: TokenClaims['access'] = [];
      for (const scope of requested) {
        const [type, name = '', actions = ''] = scope.split(':');
        if (type !== 'repository' || !actions.split(',').includes('pull')) continue;
        if (privateRepos.has(name) && subject === 'anonymous') continue;
        access.push({ name, actions: ['pull'] });
      }
      const exp = Math.floor(Date.now() / 1000) + tokenTtl;
      const token = sign({ sub: subject, access, exp });
      tokens.push({ subject, requested, granted: access.map((a) => `repository:${a.name}:pull`) });
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          token,
          access_token: token,
          expires_in: tokenTtl,
          issued_at: new Date().toISOString(),
        }),
      );
    },
    { names: [HUB_AUTH] },
  );

  const blobPath = (digest: string) => {
    const hex = digest.replace(/^sha256:/, '');
    return `/registry-v2/docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}/data`;
  };
  const signature = (path: string, repo: string, expires: number) =>
    b64url(hmac(`${path}\n${repo}\n${expires}`));
  const signedBlobUrl = (repo: string, digest: string, expiresAt = Date.now() + urlTtlMs) => {
    const path = blobPath(digest);
    const expires = Math.floor(expiresAt / 1000);
    const query = new URLSearchParams({
      repo,
      expires: String(expires),
      signature: signature(path, repo, expires),
    });
    return `https://${HUB_CDN}${path}?${query}`;
  };

  // --- production.cloudflare.docker.com ---
  const cdn = await h.startFront({
    upstream,
    names: [HUB_CDN],
    onRequest(req, res, forward) {
      const url = new URL(req.url ?? '/', `https://${HUB_CDN}`);
      const match =
        /^\/registry-v2\/docker\/registry\/v2\/blobs\/sha256\/[0-9a-f]{2}\/([0-9a-f]{64})\/data$/.exec(
          url.pathname,
        );
      const repo = url.searchParams.get('repo') ?? '';
      const expires = Number(url.searchParams.get('expires'));
      const given = Buffer.from(url.searchParams.get('signature') ?? '', 'base64url');
      const expected = match ? hmac(`${url.pathname}\n${repo}\n${expires}`) : Buffer.alloc(0);
      const xml = (status: number, code: string, message: string) =>
        res
          .writeHead(status, { 'content-type': 'application/xml' })
          .end(
            `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message}</Message></Error>`,
          );
      if (req.method !== 'GET' && req.method !== 'HEAD')
        return xml(405, 'MethodNotAllowed', 'method not allowed');
      if (!match || given.length !== expected.length || !timingSafeEqual(given, expected)) {
        return xml(403, 'SignatureDoesNotMatch', 'The request signature does not match');
      }
      if (!(expires * 1000 > Date.now())) return xml(403, 'AccessDenied', 'Request has expired');
      if (req.headers.authorization) {
        return xml(400, 'InvalidArgument', 'Only one auth mechanism allowed; the query string is signed');
      }
      return forward({ path: `/v2/${repo}/blobs/sha256:${match[1]}`, headers: { host: undefined } });
    },
  });

  // --- registry-1.docker.io ---
  const challenge = (scope?: string, error?: string) =>
    `Bearer realm="https://${HUB_AUTH}/token",service="${HUB_SERVICE}"${scope ? `,scope="${scope}"` : ''}${error ? `,error="${error}"` : ''}`;
  const rateHeaders = (subject: string) => ({
    'ratelimit-limit': `${limit};w=21600`,
    'ratelimit-remaining': `${Math.max(0, limit - (pullCounts.get(subject) ?? 0))};w=21600`,
    'docker-ratelimit-source': subject === 'anonymous' ? '127.0.0.1' : subject,
  });

  const registry = await h.startFront({
    upstream,
    names: [HUB_REGISTRY],
    onRequest(req, res, forward) {
      const url = new URL(req.url ?? '/', `https://${HUB_REGISTRY}`);
      const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
      const claims = bearer ? verifyToken(bearer) : undefined;
      const unauthorized = (scope?: string, detail?: unknown) =>
        res
          .writeHead(401, {
            'content-type': 'application/json',
            'www-authenticate': challenge(scope, bearer && scope ? 'insufficient_scope' : undefined),
          })
          .end(errorBody('UNAUTHORIZED', 'authentication required', detail));

      if (url.pathname === '/v2/' || url.pathname === '/v2') {
        if (!claims) return unauthorized();
        return forward();
      }
      const route = /^\/v2\/(.+?)\/(manifests|blobs|tags)\/(.+)$/.exec(url.pathname);
      if (!route) {
        res.writeHead(404, { 'content-type': 'application/json' }).end(errorBody('NOT_FOUND', 'not found'));
        return;
      }
      const [, name = '', kind = '', reference = ''] = route;
      const scope = `repository:${name}:pull`;
      if (!claims?.access.some((a) => a.name === name && a.actions.includes('pull'))) {
        return unauthorized(scope, [{ Type: 'repository', Class: '', Name: name, Action: 'pull' }]);
      }
      if (kind === 'manifests') {
        if (req.method === 'GET') {
          const count = (pullCounts.get(claims.sub) ?? 0) + 1;
          if (count > limit) {
            refused += 1;
            res
              .writeHead(429, { 'content-type': 'application/json', ...rateHeaders(claims.sub) })
              .end(
                errorBody(
                  'TOOMANYREQUESTS',
                  'You have reached your pull rate limit. You may increase the limit by authenticating and upgrading: https://www.docker.com/increase-rate-limit',
                ),
              );
            return;
          }
          pullCounts.set(claims.sub, count);
        }
        return forward({ responseHeaders: rateHeaders(claims.sub) });
      }
      if (kind === 'blobs' && (req.method === 'GET' || req.method === 'HEAD')) {
        res
          .writeHead(307, {
            location: signedBlobUrl(name, reference),
            'content-type': 'text/html; charset=utf-8',
          })
          .end(req.method === 'HEAD' ? undefined : '<a href="...">Temporary Redirect</a>.\n');
        return;
      }
      return forward();
    },
  });

  return {
    registry,
    auth,
    cdn,
    mappings: [
      `${HUB_REGISTRY}=127.0.0.1:${registry.port}`,
      `${HUB_AUTH}=127.0.0.1:${auth.port}`,
      `${HUB_CDN}=127.0.0.1:${cdn.port}`,
    ].join(' '),
    tokens,
    pulls: (subject = 'anonymous') => pullCounts.get(subject) ?? 0,
    refused: () => refused,
    resetLimits() {
      pullCounts.clear();
    },
    signedBlobUrl,
  };
}
