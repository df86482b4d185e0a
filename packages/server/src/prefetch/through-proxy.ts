/**
 * HTTP requests the way a container client sends them through drp: `https://` via a CONNECT
 * tunnel (TLS inside it, trusting the proxy's CA besides the usual roots: intercepted hosts
 * present drp's certificates, others their own), `http://` in absolute form. Proxy credentials
 * from the proxy URL go in `Proxy-Authorization`. One tunnel per request: simple, and the
 * proxy's own connection pooling is what matters for upstream.
 */
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import tls from 'node:tls';

export interface ProxyEndpoint {
  readonly host: string;
  readonly port: number;
  /** `Basic ...` when the proxy URL carried `user:password@`. */
  readonly authorization: string | undefined;
  /** PEM certificates trusted for TLS inside tunnels (the proxy's CA and the system roots). */
  readonly ca: readonly string[];
}

export function parseProxyUrl(text: string): {
  host: string;
  port: number;
  authorization: string | undefined;
} {
  let url: URL;
  try {
    url = new URL(text.includes('://') ? text : `http://${text}`);
  } catch {
    throw new Error(`--proxy: not a URL: ${JSON.stringify(text)}`);
  }
  if (url.protocol !== 'http:') throw new Error('--proxy: drp is an http:// proxy');
  const authorization =
    url.username !== ''
      ? `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64')}`
      : undefined;
  return { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(url.port || 80), authorization };
}

export interface SendOptions {
  readonly method?: string;
  readonly headers?: Record<string, string>;
  readonly timeoutMs?: number;
}

/** Sends a request through the proxy; resolves with the response (body not read yet). */
export async function send(
  proxy: ProxyEndpoint,
  url: URL,
  options: SendOptions = {},
): Promise<IncomingMessage> {
  const method = options.method ?? 'GET';
  const timeoutMs = options.timeoutMs ?? 60_000;
  if (url.protocol === 'http:') {
    return await finish(
      http.request({
        host: proxy.host,
        port: proxy.port,
        method,
        path: url.href,
        agent: false,
        headers: {
          host: url.host,
          ...options.headers,
          ...(proxy.authorization ? { 'proxy-authorization': proxy.authorization } : {}),
        },
      }),
      timeoutMs,
    );
  }
  const port = Number(url.port || 443);
  const hostname = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const socket = await tunnel(proxy, hostname, port, timeoutMs);
  const secure = tls.connect({
    socket,
    servername: hostname,
    ca: [...proxy.ca],
    ALPNProtocols: ['http/1.1'],
  });
  return await finish(
    https.request({
      host: hostname,
      port,
      method,
      path: `${url.pathname}${url.search}`,
      // No agent: with one, Node would open its own connection instead of using the tunnel.
      createConnection: () => secure,
      headers: { host: url.host, ...options.headers },
    }),
    timeoutMs,
  );
}

function finish(req: http.ClientRequest, timeoutMs: number): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.once('error', reject);
    req.once('response', (res) => {
      // The idle timeout keeps guarding the body: a stalled transfer fails instead of hanging.
      resolve(res);
    });
    req.end();
  });
}

function tunnel(proxy: ProxyEndpoint, host: string, port: number, timeoutMs: number): Promise<Socket> {
  const authority = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: proxy.host,
      port: proxy.port,
      method: 'CONNECT',
      path: authority,
      agent: false,
      headers: {
        host: authority,
        ...(proxy.authorization ? { 'proxy-authorization': proxy.authorization } : {}),
      },
    });
    req.setTimeout(timeoutMs, () =>
      req.destroy(new Error(`proxy did not answer CONNECT within ${timeoutMs} ms`)),
    );
    req.once('error', reject);
    req.once('connect', (res: IncomingMessage, socket: Socket) => {
      req.setTimeout(0);
      if (res.statusCode !== 200) {
        socket.destroy();
        reject(
          new Error(
            `proxy refused CONNECT ${authority}: ${res.statusCode} ${res.statusMessage ?? ''}`.trim(),
          ),
        );
        return;
      }
      resolve(socket);
    });
    req.end();
  });
}

/** Reads a (small) body whole. */
export async function readBody(res: IncomingMessage, limit = 8 * 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      res.destroy();
      throw new Error(`response larger than ${limit} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** The proxy's CA certificate from its plain endpoint (`GET /ca.crt`). */
export async function fetchProxyCa(
  proxy: Pick<ProxyEndpoint, 'host' | 'port' | 'authorization'>,
): Promise<string> {
  const host = proxy.host.includes(':') ? `[${proxy.host}]` : proxy.host;
  const res = await finish(
    http.request({
      host: proxy.host,
      port: proxy.port,
      path: '/ca.crt',
      agent: false,
      headers: {
        host: `${host}:${proxy.port}`,
        ...(proxy.authorization ? { authorization: proxy.authorization } : {}),
      },
    }),
    30_000,
  );
  const body = (await readBody(res)).toString('utf8');
  if (res.statusCode !== 200 || !body.includes('BEGIN CERTIFICATE')) {
    throw new Error(
      `cannot get the proxy's CA from http://${host}:${proxy.port}/ca.crt (status ${res.statusCode})`,
    );
  }
  return body;
}
