// What drp-server loads only on first use (got, prom-client; @peculiar/x509 only to create a CA)
// must work the first time it is needed: /ca.crt right after start, the first intercepted
// CONNECT (a leaf issued on the spot), the first upstream request, and a first /metrics scrape
// that shows what was counted before it.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { createHarness } from '../harness/index.ts';
import { get, registryNamed, startDaemon, tlsVia } from './daemon-lib.ts';

test('after start: /ca.crt, the first intercepted CONNECT and upstream request, then a first scrape counting them', async (t) => {
  const h = createHarness(t);
  const ca = await h.testCA();
  const registry = await registryNamed(h, 'lazy.test');
  const caDir = h.tempDir('ca');
  const drp = await startDaemon(h, {
    REGISTRIES: registry.named,
    UPSTREAM_MAPPINGS: 'lazy.test=127.0.0.1',
    UPSTREAM_CA_FILE: ca.certPath,
    CACHE_DIR: h.tempDir('cache'),
    CA_DIR: caDir,
    METRICS: 'true',
  });
  // startDaemon fetched /ca.crt once the startup line was out: the CA drp created on this start.
  assert.equal(drp.caPem, await readFile(join(caDir, 'ca.crt'), 'utf8'));

  // The first intercepted CONNECT: a leaf for the name, signed by that CA (tls.connect checks).
  const secure = await tlsVia(drp.port, registry.named, drp.caPem);
  const leaf = secure.getPeerCertificate();
  assert.equal(leaf.subjectaltname, 'DNS:lazy.test');
  // The first upstream request, over that connection.
  secure.write(`GET /v2/ HTTP/1.1\r\nHost: ${registry.named}\r\nConnection: close\r\n\r\n`);
  let answer = '';
  secure.setEncoding('utf8');
  for await (const chunk of secure) answer += chunk;
  assert.match(answer, /^HTTP\/1\.1 200 /);

  const metrics = await get(`${drp.url}/metrics`);
  assert.equal(metrics.status, 200);
  assert.match(
    metrics.body,
    new RegExp(`^drp_requests_total\\{[^}]*registry="${registry.named}"[^}]*\\} 1$`, 'm'),
  );
  assert.match(
    metrics.body,
    new RegExp(`^drp_upstream_requests_total\\{registry="${registry.named}",status_class="2xx"\\} 1$`, 'm'),
  );
  assert.match(metrics.body, /^process_resident_memory_bytes \d/m);
});
