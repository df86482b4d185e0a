/**
 * Plain-HTTP proxying of absolute-form requests to hosts not intercepted: with backpressure,
 * hop-by-hop headers dropped, only to allowed addresses (BLOCKED_DESTINATIONS, checked on the
 * resolved address), one `forward` record per request.
 */
import { once } from 'node:events';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { DESTINATION_BLOCKED, endToEndHeaders } from '@drp/core';
import { clientOf, hostKey } from './naming.js';
import { forbidden, type Refusals } from './refusal.js';
import type { MitmOptions } from './types.js';

export type ForwardOptions = Pick<
  MitmOptions,
  'resolveAddress' | 'destinations' | 'family' | 'timeouts' | 'onForward'
>;

export interface Forwarder {
  forward(req: IncomingMessage, res: ServerResponse, host: string, port: number, path: string): Promise<void>;
  destroy(): void;
}

export function createForwarder(options: ForwardOptions, refusals: Refusals): Forwarder {
  const agent = new http.Agent({ keepAlive: true, ...(options.family ? { family: options.family } : {}) });

  async function forward(
    req: IncomingMessage,
    res: ServerResponse,
    host: string,
    port: number,
    path: string,
  ) {
    const started = performance.now();
    const name = hostKey(host, port);
    const where = options.resolveAddress(host, port);
    const record = (status: number, bytes: number, error: string | undefined) =>
      options.onForward({
        type: 'forward',
        client: clientOf(req.socket),
        method: req.method ?? 'GET',
        host: name,
        path: path.split('?')[0] ?? path,
        status,
        bytes,
        ms: Math.round(performance.now() - started),
        error,
      });
    const plan = options.destinations.plan(host, port, where.host);
    if (plan.refused) return refusals.answer(req, res, 'absolute', name, forbidden(plan.refused.message));
    const upstream = http.request({
      host: where.host,
      port: where.port,
      ...(plan.lookup ? { lookup: plan.lookup } : {}),
      method: req.method,
      path,
      headers: { ...endToEndHeaders(req.headers), host: port === 80 ? name.slice(0, -3) : name },
      agent,
      timeout: options.timeouts.tunnelConnectMs || undefined,
    });
    upstream.once('timeout', () =>
      upstream.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })),
    );
    let bytes = 0;
    try {
      const responded = once(upstream, 'response') as Promise<[IncomingMessage]>;
      responded.catch(() => {}); // the pipeline below reports the same error
      await pipeline(req, upstream);
      const [response] = await responded;
      upstream.setTimeout(0);
      res.writeHead(response.statusCode ?? 502, endToEndHeaders(response.headers));
      response.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
      });
      await pipeline(response, res);
      record(response.statusCode ?? 502, bytes, undefined);
    } catch (error) {
      upstream.destroy();
      const outcome = failed(req, res, name, error as Error & { code?: string }, refusals);
      if (outcome) record(res.statusCode, bytes, outcome);
    }
  }

  return { forward, destroy: () => agent.destroy() };
}

/** Answers a forward that failed; returns the error to log, or undefined when it was a refusal. */
function failed(
  req: IncomingMessage,
  res: ServerResponse,
  name: string,
  error: Error & { code?: string },
  refusals: Refusals,
): string | undefined {
  const code = error.code ?? error.message;
  if (code === DESTINATION_BLOCKED && !res.headersSent) {
    refusals.answer(req, res, 'absolute', name, forbidden(error.message));
    return undefined;
  }
  if (!res.headersSent) {
    res.writeHead(502, { 'content-type': 'text/plain' }).end(`upstream ${name} failed: ${code}\n`);
  } else res.destroy();
  return code;
}
