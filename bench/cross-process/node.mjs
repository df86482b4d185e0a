// One drp process (built @drp/core, plain JavaScript: no loader in the measured process) on a
// shared cache directory, for bench/cross-process.ts. Prints its port; answers 'cpu' messages
// with its CPU seconds so far.
import http from 'node:http';
import { createRegistryCache } from '../../packages/core/dist/index.js';

const cache = await createRegistryCache({ cacheDir: process.env.CACHE_DIR ?? '' });
const target = { host: '127.0.0.1', port: Number(process.env.UPSTREAM_PORT), protocol: 'http' };
const server = http.createServer((req, res) => {
  void cache.handle(req, res, target);
});
process.on('message', (message) => {
  if (message !== 'cpu') return;
  const { user, system } = process.cpuUsage();
  process.send?.({ cpu: (user + system) / 1e6 });
});
server.listen(0, '127.0.0.1', () => process.send?.({ port: server.address().port }));
