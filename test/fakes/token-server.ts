// A token server speaking the Docker Hub token protocol (GET /token?service=&scope=, optional
// Basic credentials -> {token, access_token, expires_in, issued_at}), issuing JWTs that
// distribution 2.8's `auth.token` accepts: ES256 (raw r||s signature), the signing certificate in
// `x5c`, chained to the test CA given to the registry as `rootcertbundle`.
import { createHash, randomUUID, sign, X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Harness, HttpsServer } from '../harness/index.ts';

export interface TokenServerOptions {
  /** `service` (the registry's `auth.token.service`), checked against the request. */
  service: string;
  /** `iss` claim (the registry's `auth.token.issuer`). */
  issuer: string;
  /** Accepted Basic credentials: user -> password. */
  users: Record<string, string>;
  /** Repositories anonymous clients may pull. */
  publicRepos?: string[];
  /** Token lifetime in seconds (default 300). */
  expiresIn?: number;
  /** Extra certificate names (e.g. ['auth.test']). */
  names?: string[];
}

export interface TokenRequestRecord {
  /** User name of the Basic credentials sent, or undefined (anonymous). */
  user: string | undefined;
  /** True when the credentials were wrong (the answer was 401). */
  rejected: boolean;
  scope: string;
  /** sha256 of the issued token (tokens themselves are not kept). */
  tokenHash?: string;
}

export interface TokenServer extends HttpsServer {
  /** Root certificate bundle for the registry config (the test CA). */
  rootCertBundle: string;
  issuer: string;
  service: string;
  /** `https://<name>:<port>/token` for the first name (or 127.0.0.1). */
  realm: string;
  requests: TokenRequestRecord[];
  /** Whether a token was issued by this server (and is unexpired). */
  isValid(token: string): boolean;
}

function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

function basicUser(req: IncomingMessage): { user: string; password: string } | undefined {
  const header = req.headers.authorization;
  if (!header?.startsWith('Basic ')) return undefined;
  const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon === -1 ? undefined : { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

export async function startTokenServer(h: Harness, opts: TokenServerOptions): Promise<TokenServer> {
  const ca = await h.testCA();
  const signer = await ca.issue([`${opts.issuer}.signer`]);
  const x5c = [new X509Certificate(signer.certPem).raw.toString('base64')];
  const expiresIn = opts.expiresIn ?? 300;
  const requests: TokenRequestRecord[] = [];
  const issued = new Map<string, number>();

  const server = await h.startHttpsServer(
    (req, res) => {
      const url = new URL(req.url ?? '/', 'https://token.invalid');
      if (url.pathname !== '/token' || req.method !== 'GET') {
        res.writeHead(404).end();
        return;
      }
      const scope = url.searchParams.getAll('scope').join(' ');
      const creds = basicUser(req);
      const user = creds?.user;
      if (creds && opts.users[creds.user] !== creds.password) {
        requests.push({ user, rejected: true, scope });
        res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Basic realm="token"' });
        res.end('{"details":"incorrect username or password"}');
        return;
      }
      const access: { type: string; name: string; actions: string[] }[] = [];
      for (const one of scope.split(' ').filter(Boolean)) {
        const [type = '', name = '', actions = ''] = one.split(':');
        if (type !== 'repository') continue;
        const wanted = actions.split(',').filter(Boolean);
        const granted = user
          ? wanted
          : (opts.publicRepos ?? []).includes(name)
            ? wanted.filter((a) => a === 'pull')
            : [];
        if (granted.length > 0) access.push({ type, name, actions: granted });
      }
      const now = Math.floor(Date.now() / 1000);
      const header = { typ: 'JWT', alg: 'ES256', x5c };
      const claims = {
        iss: opts.issuer,
        sub: user ?? '',
        aud: opts.service,
        exp: now + expiresIn,
        nbf: now - 10,
        iat: now,
        jti: randomUUID(),
        access,
      };
      const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
      const signature = sign('sha256', Buffer.from(input), { key: signer.keyPem, dsaEncoding: 'ieee-p1363' });
      const token = `${input}.${b64url(signature)}`;
      const tokenHash = createHash('sha256').update(token).digest('hex');
      issued.set(token, Date.now() + expiresIn * 1000);
      requests.push({ user, rejected: false, scope, tokenHash });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          token,
          access_token: token,
          expires_in: expiresIn,
          issued_at: new Date().toISOString(),
        }),
      );
    },
    { names: opts.names ?? [] },
  );
  const host = opts.names?.[0] ?? '127.0.0.1';
  return Object.assign(server, {
    rootCertBundle: ca.certPath,
    issuer: opts.issuer,
    service: opts.service,
    realm: `https://${host}:${server.port}/token`,
    requests,
    isValid(token: string) {
      const until = issued.get(token);
      return until !== undefined && until > Date.now();
    },
  });
}
