// A small HTTPS client for tests: trusts a given CA, can connect to 127.0.0.1 while sending
// another host name (SNI + Host), and returns the whole body.
import type { IncomingHttpHeaders } from 'node:http';
import { request } from 'node:https';
import { isIP } from 'node:net';

export interface HttpsRequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** PEM of the CA to trust (only this CA is trusted). */
  ca?: string;
  /** Connect to this address instead of the URL's host (like curl --connect-to). */
  connectTo?: string;
  timeoutMs?: number;
}

export interface HttpsResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  text(): string;
  json<T = unknown>(): T;
}

export function httpsRequest(url: string | URL, opts: HttpsRequestOptions = {}): Promise<HttpsResponse> {
  const u = new URL(url);
  const hostname = u.hostname.replace(/^\[|\]$/g, '');
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: opts.connectTo ?? hostname,
        port: u.port || 443,
        path: `${u.pathname}${u.search}`,
        method: opts.method ?? 'GET',
        headers: { host: u.host, ...opts.headers },
        ca: opts.ca,
        servername: isIP(hostname) ? undefined : hostname,
        agent: false,
        timeout: opts.timeoutMs ?? 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body,
            text: () => body.toString('utf8'),
            json: <T>() => JSON.parse(body.toString('utf8')) as T,
          });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`request to ${u.href} timed out`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}
