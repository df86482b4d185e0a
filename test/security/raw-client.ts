// A registry client that says exactly what an attacker would: CONNECT through drp, TLS with the
// proxy's CA, then request bytes written by hand (no client library normalises the target).
import type tls from 'node:tls';
import { tlsVia } from '../integration/daemon-lib.ts';

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

export { tlsVia };

/** Reads every response on `socket` until it closes; parses them in order. */
export async function readResponses(
  socket: tls.TLSSocket,
  count: number,
  timeoutMs = 20_000,
): Promise<RawResponse[]> {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  const responses: RawResponse[] = [];
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    responses.length = 0;
    let rest: Buffer = Buffer.concat(chunks);
    while (rest.length > 0) {
      const parsed = parseOne(rest);
      if (!parsed) break;
      responses.push(parsed.response);
      rest = parsed.rest;
    }
    if (responses.length >= count || socket.destroyed) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  return responses;
}

function parseOne(data: Buffer): { response: RawResponse; rest: Buffer } | undefined {
  const end = data.indexOf('\r\n\r\n');
  if (end === -1) return undefined;
  const head = data.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number((head[0] ?? '').split(' ')[1]);
  const headers: Record<string, string> = {};
  for (const line of head.slice(1)) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const body = data.subarray(end + 4);
  if (headers['transfer-encoding'] === 'chunked') {
    const out: Buffer[] = [];
    let offset = 0;
    for (;;) {
      const lineEnd = body.indexOf('\r\n', offset);
      if (lineEnd === -1) return undefined;
      const size = Number.parseInt(body.subarray(offset, lineEnd).toString(), 16);
      if (body.length < lineEnd + 2 + size + 2) return undefined;
      if (size === 0)
        return { response: { status, headers, body: Buffer.concat(out) }, rest: body.subarray(lineEnd + 4) };
      out.push(body.subarray(lineEnd + 2, lineEnd + 2 + size));
      offset = lineEnd + 2 + size + 2;
    }
  }
  const length = headers['content-length'] === undefined ? 0 : Number(headers['content-length']);
  if (body.length < length) return undefined;
  return { response: { status, headers, body: body.subarray(0, length) }, rest: body.subarray(length) };
}

/** One hand-written request over a fresh CONNECT + TLS session; the target is sent verbatim. */
export async function rawRequest(
  proxyPort: number,
  hostPort: string,
  caPem: string,
  method: string,
  target: string,
  headers: Record<string, string> = {},
  body = '',
): Promise<RawResponse> {
  const socket = await tlsVia(proxyPort, hostPort, caPem);
  try {
    const lines = [`${method} ${target} HTTP/1.1`, `host: ${hostPort}`, 'connection: close'];
    for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
    if (body !== '' || method === 'POST' || method === 'PUT')
      lines.push(`content-length: ${Buffer.byteLength(body)}`);
    socket.write(`${lines.join('\r\n')}\r\n\r\n${body}`);
    const [response] = await readResponses(socket, 1);
    if (!response) throw new Error(`no answer to ${method} ${target}`);
    return response;
  } finally {
    socket.destroy();
  }
}
