// Upstream download stages: 200 MB over TLS from the local source server, read as a stream and
// dropped, through got 14 with the options drp's upstream client uses (decompress false, no
// retries, HTTP/1.1, keep-alive agent, stream API) and through bare node:https for comparison.
// A small download on the same keep-alive connection first, so the TLS handshake and JIT
// warm-up are not part of the measured 200 MB (drp reuses upstream connections the same way).
import { Agent, get } from 'node:https';
import type { Readable } from 'node:stream';
// got is a dependency of @drp/core, not of the workspace root: import it from there.
import got from '../../packages/core/node_modules/got/dist/source/index.js';
import { MiB, type StageResult, timed } from './measure.ts';

export interface DownloadOptions {
  url: string;
  ca: string;
  bytes: number;
}

async function drain(stream: Readable): Promise<{ bytes: number; chunks: number }> {
  let bytes = 0;
  let chunks = 0;
  await new Promise<void>((resolve, reject) => {
    stream.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      chunks += 1;
    });
    stream.once('end', resolve);
    stream.once('error', reject);
  });
  return { bytes, chunks };
}

function info(r: { bytes: number; chunks: number }) {
  return { bytes: r.bytes, info: { chunks: r.chunks, meanChunkKiB: Math.round(r.bytes / r.chunks / 1024) } };
}

/**
 * `response`: got still makes the request (agent, redirects, timeouts), but the body is read from
 * the IncomingMessage it exposes, in flowing mode, without got's Duplex (what upstream/client.ts
 * does): no read() / downloadProgress / push per 16 KiB record.
 */
function gotResponseBody(stream: ReturnType<typeof got.stream>): Promise<Readable> {
  return new Promise((resolve, reject) => {
    stream.once('error', reject);
    stream.once('response', (response: Readable) => {
      response.removeAllListeners('readable');
      resolve(response);
    });
  });
}

export async function downloadGot(o: DownloadOptions, response = false): Promise<StageResult> {
  const agent = new Agent({ keepAlive: true, ca: o.ca });
  const client = got.extend({
    agent: { https: agent },
    decompress: false,
    throwHttpErrors: false,
    retry: { limit: 0 },
    http2: false,
    headers: { 'user-agent': undefined },
  });
  const fetch = async (n: number) => {
    const stream = client.stream(`${o.url}/bytes/${n}`);
    return drain(response ? await gotResponseBody(stream) : stream);
  };
  await fetch(16 * MiB);
  const r = await timed(response ? 'download-got-response' : 'download-got', async () =>
    info(await fetch(o.bytes)),
  );
  agent.destroy();
  return r;
}

export async function downloadHttps(o: DownloadOptions): Promise<StageResult> {
  const agent = new Agent({ keepAlive: true, ca: o.ca });
  const fetch = (n: number) =>
    new Promise<{ bytes: number; chunks: number }>((resolve, reject) => {
      get(`${o.url}/bytes/${n}`, { agent }, (res) => drain(res).then(resolve, reject)).once('error', reject);
    });
  await fetch(16 * MiB);
  const r = await timed('download-https', async () => info(await fetch(o.bytes)));
  agent.destroy();
  return r;
}
