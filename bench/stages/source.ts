// The upstream for the download stages: a plain node:https server on loopback answering
// GET /bytes/<n> with n random bytes (a 16 MiB buffer cycled, written with backpressure in
// 1 MiB writes), keep-alive. It runs in its own process, which is not measured: only the
// downloading client is. Prints "listening <port>" when ready.
//
//   CERT=... KEY=... node --import tsx bench/stages/source.ts
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { randomSource, writeCycled } from './measure.ts';

const src = randomSource();

const server = createServer(
  { cert: readFileSync(String(process.env.CERT)), key: readFileSync(String(process.env.KEY)) },
  (req, res) => {
    const m = /^\/bytes\/(\d+)$/.exec(req.url ?? '');
    if (!m) {
      res.writeHead(404).end();
      return;
    }
    const total = Number(m[1]);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': total });
    void writeCycled(src, res, total);
  },
);
server.keepAliveTimeout = 300_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`);
});
process.once('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
});
