// The blob engine alone, as a benchmark subject: @drp/core (built) mounted in a plain HTTPS
// server, every request handed to the cache for one upstream registry. No MITM, no daemon:
// this measures the middleware, its store and its single-flight fills.
//
//   PORT CACHE_DIR CERT KEY UPSTREAM_HOST UPSTREAM_PORT UPSTREAM_ADDRESS UPSTREAM_CA
//   node bench/lib/blob-server.mjs   (plain JavaScript: no loader in the measured process tree)
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { createRegistryCache } from '@drp/core';

/** @param {string} name */
function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
}

const upstream = { host: env('UPSTREAM_HOST'), port: Number(env('UPSTREAM_PORT')) };
const cache = await createRegistryCache({
  cacheDir: env('CACHE_DIR'),
  maxSize: process.env.MAX_SIZE ?? '32g',
  upstream: {
    mappings: { [upstream.host]: env('UPSTREAM_ADDRESS') },
    caCertificates: readFileSync(env('UPSTREAM_CA'), 'utf8'),
  },
});
const server = createServer(
  { cert: readFileSync(env('CERT')), key: readFileSync(env('KEY')) },
  (req, res) => {
    if (req.url === '/__stats') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(cache.stats()));
      return;
    }
    void cache.handle(req, res, upstream);
  },
);
server.keepAliveTimeout = 300_000;
server.requestTimeout = 0;
server.listen(Number(env('PORT')), '127.0.0.1', () => {
  process.stdout.write(`listening ${env('PORT')}\n`);
});
const stop = () => {
  server.close();
  server.closeAllConnections();
  void cache.close().then(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
