// A WAN-like upstream for the benches: a TLS front (test/harness/front.ts) in front of the real
// registry that paces every response body with a token bucket (default 40 MB/s per connection)
// and delays its first byte (default 30 ms per request, plus two more round trips on a new
// connection, as TCP and TLS 1.3 handshakes cost over a real link). Configurable with
// BENCH_WAN_MBPS and BENCH_WAN_LATENCY_MS. It runs in the bench's own process, for drp and for
// direct pulls alike, so both pay the same.
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Front, Harness, Registry } from '../../test/harness/index.ts';

export interface WanOptions {
  /** Body rate per response, MB/s (10^6 bytes). */
  mbPerSecond: number;
  /** Added before the first byte of every response, ms. */
  latencyMs: number;
}

export function wanOptions(): WanOptions {
  const num = (name: string, dflt: number) => {
    const raw = process.env[name];
    const v = raw === undefined || raw === '' ? dflt : Number(raw);
    if (!Number.isFinite(v) || v < 0)
      throw new Error(`${name} must be a non-negative number, got ${JSON.stringify(raw)}`);
    return v;
  };
  return { mbPerSecond: num('BENCH_WAN_MBPS', 40), latencyMs: num('BENCH_WAN_LATENCY_MS', 30) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Token-bucket pacing: at most `rate` bytes/s on average, with at most `burst` bytes of unused
 * credit. Kept as the time the next byte may leave (`#next`), so a timer that fires late (a
 * loaded machine) is made up by the following pieces instead of lowering the rate.
 */
export class Pace extends Transform {
  #next = performance.now();
  constructor(
    private readonly rate: number,
    private readonly burst = 256 * 1024,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#send(chunk).then(() => cb(), cb);
  }
  async #send(chunk: Buffer): Promise<void> {
    const piece = 64 * 1024;
    for (let off = 0; off < chunk.length; off += piece) {
      const part = chunk.subarray(off, off + piece);
      const now = performance.now();
      this.#next =
        Math.max(this.#next, now - (this.burst / this.rate) * 1000) + (part.length / this.rate) * 1000;
      const wait = this.#next - now - (this.burst / this.rate) * 1000;
      if (wait > 0) await sleep(wait);
      if (this.destroyed) return;
      this.push(part);
    }
  }
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade']);

function responseHeaders(up: IncomingMessage): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(up.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
  return out;
}

/**
 * Starts the throttled front for `upstream`, named registry.test (so drp can map that name to
 * it, as it maps the plain registry's). Owned by the harness.
 */
export async function startWanFront(
  h: Harness,
  upstream: Registry,
  o: WanOptions = wanOptions(),
): Promise<Front> {
  const seen = new WeakSet<Socket>();
  const rate = o.mbPerSecond * 1e6;
  return h.startFront({
    upstream: { url: upstream.url, caCertPem: (await h.testCA()).certPem },
    names: ['registry.test'],
    async onRequest(req, res, forward) {
      const fresh = !seen.has(req.socket);
      seen.add(req.socket);
      await sleep(o.latencyMs * (fresh ? 3 : 1));
      let up: IncomingMessage;
      try {
        up = await forward.raw();
      } catch (e) {
        res.writeHead(502, { 'content-type': 'text/plain' }).end(`wan front: upstream failed: ${e}`);
        return;
      }
      res.writeHead(up.statusCode ?? 502, responseHeaders(up));
      if (rate === 0) await pipeline(up, res).catch(() => {});
      else await pipeline(up, new Pace(rate), res).catch(() => {});
    },
  });
}
