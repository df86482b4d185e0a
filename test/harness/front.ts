// Fake and intercepting HTTPS servers with test-CA certificates:
//  - startHttpsServer(ca, handler): a fully fake host (CDN, token server...).
//  - startFront(ca, { upstream, onRequest }): forwards to an upstream registry, streamed and
//    byte for byte, unless onRequest answers itself or edits what is forwarded (status,
//    headers, truncated/corrupted/stalled body). Both record every request in a counter.
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { Agent, createServer, type Server, request as upstreamRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Transform, type TransformCallback } from 'node:stream';
import type { TestCA } from './ca.ts';
import { RequestCounter } from './counter.ts';
import { type HttpsRequestOptions, type HttpsResponse, httpsRequest } from './http.ts';

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => unknown; // may return res.end() or a promise

export interface HttpsServerOptions {
  /** DNS names for the certificate besides localhost and 127.0.0.1 (e.g. ['cdn.test']). */
  names?: string[];
}

export interface HttpsServer {
  port: number;
  host: string;
  /** '127.0.0.1:PORT' */
  hostPort: string;
  /** 'https://127.0.0.1:PORT' */
  url: string;
  names: string[];
  /** `${names[0]}:PORT` (or 'localhost:PORT' without names): for clients that must not see a loopback address. */
  namedHostPort: string;
  caCertPem: string;
  caCertPath: string;
  certDir: string;
  /** Every request, recorded when its response finished or was cut off. */
  counter: RequestCounter;
  server: Server;
  /** An HTTPS request to this server (path like '/v2/'), trusting the test CA. */
  request(path: string, opts?: HttpsRequestOptions): Promise<HttpsResponse>;
  /** Stops listening and destroys open connections (stalled responses included). Idempotent. */
  close(): Promise<void>;
}

/** Starts an HTTPS server on 127.0.0.1 with an ephemeral port. Handler errors become 500s. */
export async function startHttpsServer(
  ca: TestCA,
  handler: RequestHandler,
  opts: HttpsServerOptions | string[] = {},
): Promise<HttpsServer> {
  const names = (Array.isArray(opts) ? opts : opts.names) ?? [];
  const cert = await ca.issue(['localhost', '127.0.0.1', ...names]);
  const counter = new RequestCounter();
  const server = createServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
    let bytes = 0;
    // Count body bytes as written, whoever writes them.
    const write = res.write.bind(res) as (...a: unknown[]) => boolean;
    const end = res.end.bind(res) as (...a: unknown[]) => ServerResponse;
    const size = (chunk: unknown) =>
      typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk instanceof Uint8Array ? chunk.length : 0;
    res.write = ((chunk: unknown, ...rest: unknown[]) => {
      bytes += size(chunk);
      return write(chunk, ...rest);
    }) as ServerResponse['write'];
    res.end = ((chunk?: unknown, ...rest: unknown[]) => {
      if (typeof chunk !== 'function') bytes += size(chunk);
      return end(chunk, ...rest);
    }) as ServerResponse['end'];
    let recorded = false;
    const record = () => {
      if (recorded) return;
      recorded = true;
      counter.record({
        method: req.method ?? 'GET',
        path: req.url ?? '/',
        status: res.statusCode,
        bytes,
        userAgent: req.headers['user-agent'],
        headers: req.headers,
      });
    };
    res.once('finish', record);
    res.once('close', record);
    Promise.resolve()
      .then(() => handler(req, res))
      .catch((e: unknown) => {
        process.stderr.write(
          `test https server handler failed: ${e instanceof Error ? e.stack : String(e)}\n`,
        );
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' }).end(String(e));
        else res.destroy();
      });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    port,
    host: '127.0.0.1',
    hostPort: `127.0.0.1:${port}`,
    url: `https://127.0.0.1:${port}`,
    names,
    namedHostPort: `${names[0] ?? 'localhost'}:${port}`,
    caCertPem: ca.certPem,
    caCertPath: ca.certPath,
    certDir: ca.certDir,
    counter,
    server,
    request: (path, reqOpts = {}) =>
      httpsRequest(`https://127.0.0.1:${port}${path}`, { ca: ca.certPem, ...reqOpts }),
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

/** Where a front forwards to: a Registry, an HttpsServer or any https URL with its CA. */
export interface Upstream {
  url: string;
  caCertPem?: string;
}

export interface ForwardOptions {
  /** Request path sent upstream (default: the client's). */
  path?: string;
  method?: string;
  /** Request header overrides; undefined removes a header. Host is kept unless overridden. */
  headers?: Record<string, string | undefined>;
  /** Send this body upstream instead of streaming the client's. */
  body?: string | Buffer;
  /** Response status sent to the client instead of the upstream's. */
  status?: number;
  /** Response header overrides; undefined removes a header. */
  responseHeaders?: Record<string, string | number | string[] | undefined>;
  /** Send only this many body bytes, then cut the connection (headers unchanged). */
  truncateAfter?: number;
  /** Flip (xor 0xff) the body byte at this offset: same length, wrong digest. */
  corruptAt?: number;
  /** After `bytes` body bytes, pause for `ms` (Infinity: until the client or close() gives up). */
  stallAfter?: { bytes: number; ms: number };
}

export interface Forward {
  /** Forwards the request and streams the (optionally edited) response to the client. */
  (opts?: ForwardOptions): Promise<void>;
  /** Sends the request upstream and returns the response unread; the caller answers the client. */
  raw(opts?: Pick<ForwardOptions, 'path' | 'method' | 'headers' | 'body'>): Promise<IncomingMessage>;
}

export type Interceptor = (req: IncomingMessage, res: ServerResponse, forward: Forward) => unknown;

export interface FrontOptions extends HttpsServerOptions {
  upstream: Upstream;
  /** Called for every request; answer `res` yourself or call forward(). Default: forward(). */
  onRequest?: Interceptor;
}

export interface Front extends HttpsServer {
  upstream: Upstream;
  /** Replaces the interceptor at run time (undefined: plain forwarding). */
  setInterceptor(fn: Interceptor | undefined): void;
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

function endToEnd(headers: IncomingMessage['headers']): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
  return out;
}

function applyOverrides(headers: OutgoingHttpHeaders, overrides: Record<string, unknown> | undefined): void {
  for (const [k, v] of Object.entries(overrides ?? {})) {
    const key = k.toLowerCase();
    if (v === undefined) delete headers[key];
    else headers[key] = v as string | number | string[];
  }
}

/** Applies corruptAt / stallAfter to a body stream while counting offsets. */
class BodyEdit extends Transform {
  private offset = 0;
  private timer: NodeJS.Timeout | undefined;
  constructor(private readonly opts: ForwardOptions) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const start = this.offset;
    this.offset += chunk.length;
    const { corruptAt, stallAfter } = this.opts;
    if (corruptAt !== undefined && corruptAt >= start && corruptAt < this.offset) {
      chunk = Buffer.from(chunk);
      chunk[corruptAt - start] = (chunk[corruptAt - start] ?? 0) ^ 0xff;
    }
    if (stallAfter && stallAfter.bytes >= start && stallAfter.bytes < this.offset) {
      const cut = stallAfter.bytes - start;
      this.push(chunk.subarray(0, cut));
      if (Number.isFinite(stallAfter.ms))
        this.timer = setTimeout(() => cb(null, chunk.subarray(cut)), stallAfter.ms);
      return; // ms: Infinity never calls back; close() destroys the connection
    }
    cb(null, chunk);
  }
  override _destroy(err: Error | null, cb: (e: Error | null) => void): void {
    clearTimeout(this.timer);
    cb(err);
  }
}

/** Starts a front for `opts.upstream` on an ephemeral port with a test-CA certificate. */
export async function startFront(ca: TestCA, opts: FrontOptions): Promise<Front> {
  const target = new URL(opts.upstream.url);
  const agent = new Agent({ keepAlive: true, ca: opts.upstream.caCertPem ?? ca.certPem });
  let interceptor = opts.onRequest;

  const raw = (req: IncomingMessage, o: ForwardOptions = {}): Promise<IncomingMessage> =>
    new Promise((resolve, reject) => {
      const headers = endToEnd(req.headers);
      applyOverrides(headers, o.headers);
      if (o.body !== undefined) {
        delete headers['transfer-encoding'];
        headers['content-length'] = Buffer.byteLength(o.body);
      }
      const up = upstreamRequest(
        {
          agent,
          host: target.hostname,
          port: target.port || 443,
          method: o.method ?? req.method,
          path: o.path ?? req.url,
          headers,
          // The upstream certificate always includes 127.0.0.1; SNI is not sent for IPs.
          servername: target.hostname === '127.0.0.1' ? undefined : target.hostname,
        },
        resolve,
      );
      up.on('error', reject);
      if (o.body !== undefined) up.end(o.body);
      else req.pipe(up);
      req.on('aborted', () => up.destroy());
    });

  const forwardFor = (req: IncomingMessage, res: ServerResponse): Forward => {
    const forward = async (o: ForwardOptions = {}) => {
      let upRes: IncomingMessage;
      try {
        upRes = await raw(req, o);
      } catch (e) {
        if (!res.headersSent)
          res.writeHead(502, { 'content-type': 'text/plain' }).end(`front: upstream failed: ${e}`);
        return;
      }
      const headers = endToEnd(upRes.headers);
      applyOverrides(headers, o.responseHeaders);
      res.writeHead(o.status ?? upRes.statusCode ?? 502, headers);
      const edit = o.corruptAt !== undefined || o.stallAfter ? new BodyEdit(o) : undefined;
      const body: NodeJS.ReadableStream = edit ? upRes.pipe(edit) : upRes;
      res.once('close', () => {
        upRes.destroy();
        edit?.destroy(); // clears a pending stall timer
      });
      if (o.truncateAfter !== undefined) {
        const limit = o.truncateAfter;
        let sent = 0;
        await new Promise<void>((resolve) => {
          body.on('data', (chunk: Buffer) => {
            const take = chunk.subarray(0, Math.max(0, limit - sent));
            sent += take.length;
            if (take.length > 0) res.write(take);
            if (sent >= limit) {
              upRes.destroy();
              // Give the written bytes a moment to leave, then drop the connection.
              setImmediate(() => res.destroy());
              resolve();
            }
          });
          body.on('end', () => {
            res.end();
            resolve();
          });
          res.once('close', () => resolve());
        });
        return;
      }
      await new Promise<void>((resolve) => {
        body.pipe(res);
        res.once('close', () => resolve());
        res.once('finish', () => resolve());
      });
    };
    return Object.assign(forward, { raw: (o?: ForwardOptions) => raw(req, o) });
  };

  const server = await startHttpsServer(
    ca,
    async (req, res) => {
      const forward = forwardFor(req, res);
      if (interceptor) await interceptor(req, res, forward);
      else await forward();
    },
    opts,
  );
  const close = server.close;
  return {
    ...server,
    upstream: opts.upstream,
    setInterceptor(fn) {
      interceptor = fn;
    },
    async close() {
      await close();
      agent.destroy();
    },
  };
}
