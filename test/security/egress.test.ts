// Egress end to end through drp-server: where the proxy may connect. Every refused target here
// is on loopback (a listener this test owns), never an address off this machine: a build that
// failed to refuse would really connect.
//
//   - a registry redirecting a tag manifest to http://127.0.0.1:P (https -> http) or to
//     https://127.0.0.1:Q (a loopback address nobody configured): 502 with an OCI error body,
//     nothing connected to, nothing cached
//   - CONNECT to a port outside TUNNEL_PORTS, or to a loopback listener, the proxy itself, or a
//     name resolving to loopback: 403, nothing connected to; the same for plain-HTTP forwards
//   - the configured registries (mapped to loopback) keep working: a real skopeo pull
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createHarness } from '../harness/index.ts';
import { registryNamed, startDaemon } from '../integration/daemon-lib.ts';
import { countingListener, linesOf, rawConnect, request } from './lib.ts';

const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

test('redirects to http or to an unconfigured loopback address: 502 naming the reason, nothing fetched or cached; the configured registry still pulls', async (t) => {
  const h = createHarness(t);
  const ca = await h.testCA();
  const plainTarget = await countingListener();
  h.defer(plainTarget.close);
  // A TLS server the upstream CA trusts, on a loopback address: only the guard keeps drp out.
  let tlsConnections = 0;
  const tlsTarget = await h.startHttpsServer((_req, res) => {
    res.writeHead(200, { 'content-type': MANIFEST }).end('{"schemaVersion":2}');
  });
  tlsTarget.server.on('connection', () => {
    tlsConnections += 1;
  });
  const fake = await h.startHttpsServer(
    (req, res) => {
      if (req.url === '/v2/') {
        res.writeHead(200, { 'docker-distribution-api-version': 'registry/2.0' }).end('{}');
      } else if (req.url === '/v2/lib/app/manifests/to-http') {
        res.writeHead(302, { location: `http://127.0.0.1:${plainTarget.port}/secret` }).end();
      } else if (req.url === '/v2/lib/app/manifests/to-loopback') {
        res.writeHead(302, { location: `https://127.0.0.1:${tlsTarget.port}/secret` }).end();
      } else res.writeHead(404).end();
    },
    ['redirecting.test'],
  );
  const registry = await registryNamed(h, 'registry.test');
  const image = await h.createImage({ layers: [200_000] });
  await registry.push(image, 'still/works:v1');

  const drp = await startDaemon(h, {
    REGISTRIES: `${fake.namedHostPort} ${registry.named}`,
    UPSTREAM_MAPPINGS: 'redirecting.test=127.0.0.1 registry.test=127.0.0.1',
    UPSTREAM_CA_FILE: ca.certPath,
    ENABLE_MANIFEST_CACHE: 'true',
    CACHE_DIR: h.tempDir('cache'),
    CA_DIR: h.tempDir('ca'),
  });
  const get = (path: string) =>
    h.run(
      'curl',
      [
        '-s',
        '-w',
        '\\n%{http_code}',
        '--cacert',
        `${drp.certDir}/ca.crt`,
        '-x',
        drp.url,
        '-H',
        `accept: ${MANIFEST}`,
        `https://${fake.namedHostPort}${path}`,
      ],
      { env: { NO_PROXY: '', no_proxy: '' } },
    );
  for (const [tag, reason] of [
    ['to-http', /redirect from https to http/],
    ['to-loopback', /blocked/],
  ] as const) {
    for (let round = 0; round < 2; round++) {
      const { stdout } = await get(`/v2/lib/app/manifests/${tag}`);
      const [body = '', status] = stdout.split('\n');
      assert.equal(status, '502', `${tag}: ${stdout}`);
      const error = (JSON.parse(body) as { errors: { code: string; message: string }[] }).errors[0];
      assert.match(error?.message ?? '', reason, body);
    }
    // Asked twice, fetched twice: a refused answer is never cached.
    await fake.counter.settle();
    assert.equal(fake.counter.count({ path: `/v2/lib/app/manifests/${tag}` }), 2, fake.counter.summary());
  }
  assert.equal(plainTarget.connections(), 0, 'nothing connected to the http redirect target');
  assert.equal(tlsConnections, 0, 'nothing connected to the loopback redirect target');
  const lines = drp.requests({ status: 502 });
  assert.ok(
    lines.some((l) => l.error === 'DRP_REDIRECT_REFUSED'),
    JSON.stringify(lines),
  );
  assert.ok(
    lines.some((l) => l.error === 'DRP_DESTINATION_BLOCKED'),
    JSON.stringify(lines),
  );

  // The configured registry, on loopback through UPSTREAM_MAPPINGS, pulls as before.
  const pulled = await h.pullImage(registry.named, 'still/works:v1', {
    proxy: drp.url,
    certDir: drp.certDir,
  });
  assert.equal(pulled.manifestDigest, image.manifestDigest);
});

test('CONNECT and plain-HTTP forwards: ports outside TUNNEL_PORTS and loopback destinations get 403 and are never connected to', async (t) => {
  const h = createHarness(t);
  const ca = await h.testCA();
  const listener = await countingListener();
  h.defer(listener.close);
  const plain = await registryNamed(h, 'plain.test');

  // Default TUNNEL_PORTS (443 + REGISTRIES' ports): a raw tunnel to another port is refused.
  const closed = await startDaemon(h, {
    UPSTREAM_MAPPINGS: 'plain.test=127.0.0.1',
    CACHE_DIR: h.tempDir('cache'),
    CA_DIR: h.tempDir('ca'),
  });
  for (const target of [`127.0.0.1:${listener.port}`, `elsewhere.test:${listener.port}`, plain.named]) {
    const answer = await rawConnect(closed.port, target);
    assert.equal(answer.status, 403, target);
    await answer.closed;
  }
  const portLines = await linesOf(closed, 'refused', 3);
  assert.ok(
    portLines.every((l) => String(l.msg).includes('TUNNEL_PORTS')),
    JSON.stringify(portLines),
  );
  await closed.daemon.stop(5000);

  // Every port open: the destination guard alone decides.
  const drp = await startDaemon(h, {
    TUNNEL_PORTS: '*',
    UPSTREAM_MAPPINGS: 'plain.test=127.0.0.1',
    UPSTREAM_CA_FILE: ca.certPath,
    CACHE_DIR: h.tempDir('cache'),
    CA_DIR: h.tempDir('ca'),
  });
  const refusedTargets = [
    `127.0.0.1:${listener.port}`,
    `127.1.2.3:${listener.port}`,
    `localhost:${listener.port}`, // a name: refused on the address it resolves to
    `[::1]:${listener.port}`,
    `[::ffff:127.0.0.1]:${listener.port}`,
    `0.0.0.0:${listener.port}`,
    `127.0.0.1:${drp.port}`, // the proxy itself
  ];
  for (const target of refusedTargets) {
    const answer = await rawConnect(drp.port, target);
    assert.equal(answer.status, 403, target);
    await answer.closed;
  }
  for (const url of [`http://127.0.0.1:${listener.port}/`, `http://localhost:${listener.port}/x?y`]) {
    const answer = await request(drp.port, url, { host: new URL(url).host });
    assert.equal(answer.status, 403, url);
  }
  assert.equal(listener.connections(), 0, 'no refused destination was connected to');
  const refused = await linesOf(drp, 'refused', refusedTargets.length + 2);
  assert.equal(refused.length, refusedTargets.length + 2, JSON.stringify(drp.lines));
  assert.ok(refused.every((l) => l.status === 403 && /blocked range/.test(String(l.msg))));

  // A host named in UPSTREAM_MAPPINGS is exempt: the tunnel to the real registry opens and TLS
  // reaches the registry itself.
  const tunnel = await rawConnect(drp.port, plain.named);
  assert.equal(tunnel.status, 200);
  tunnel.socket.destroy();
  const pulled = await h
    .pullImage(plain.named, 'none/here:v1', { proxy: drp.url, certDir: ca.certDir })
    .catch((e: Error) => e);
  // The registry answered (manifest unknown), so the tunnel carried TLS to it.
  assert.match(String(pulled), /manifest unknown|not found/i);
});
