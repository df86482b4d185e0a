// drp-server started the way users start it (a separate process configured by environment
// variables), driven by real skopeo pulls through HTTPS_PROXY against real registries.
//
// Go clients never proxy loopback addresses, so registries are addressed by name
// (registry.test:PORT, ...) and the daemon maps those names to 127.0.0.1 (UPSTREAM_MAPPINGS),
// trusting the harness CA for upstream TLS (UPSTREAM_CA_FILE).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { createHarness } from '../harness/index.ts';
import {
  BIN,
  certificateVia,
  get,
  type RunningDaemon,
  refused,
  registryNamed,
  startDaemon,
} from './daemon-lib.ts';

test('cold then warm pulls from two registries through HTTPS_PROXY: HIT lines, no upstream blob GETs when warm', async (t) => {
  const h = createHarness(t);
  const ca = await h.testCA();
  const [a, b] = await Promise.all([registryNamed(h, 'registry.test'), registryNamed(h, 'other.test')]);
  const [imageA, imageB] = await Promise.all([
    h.createImage({ layers: [300_000, 3_000_000] }),
    h.createImage({ layers: [1_500_000], format: 'docker' }),
  ]);
  await a.push(imageA, 'team/app:v1');
  await b.push(imageB, 'tools/cli:1.2.3');
  await Promise.all([a.counter.settle(), b.counter.settle()]);

  const drp = await startDaemon(
    h,
    {
      REGISTRIES: `${a.named} ${b.named}`,
      UPSTREAM_MAPPINGS: 'registry.test=127.0.0.1 other.test=127.0.0.1',
      UPSTREAM_CA_FILE: ca.certPath,
      CACHE_DIR: h.tempDir('cache'),
      CA_DIR: h.tempDir('ca'),
    },
    { npx: true },
  );
  a.counter.reset();
  b.counter.reset();

  const pull = (registry: { named: string }, ref: string) =>
    h.pullImage(registry.named, ref, { proxy: drp.url, certDir: drp.certDir });

  const coldA = await pull(a, 'team/app:v1');
  const coldB = await pull(b, 'tools/cli:1.2.3');
  assert.equal(coldA.manifestDigest, imageA.manifestDigest);
  assert.deepEqual(
    coldA.layers,
    imageA.layers.map((l) => l.digest),
  );
  assert.equal(coldB.manifestDigest, imageB.manifestDigest);
  await Promise.all([a.counter.settle(), b.counter.settle()]);
  assert.ok(a.counter.count({ kind: 'blob', method: 'GET' }) >= 3, a.counter.summary());
  assert.ok(b.counter.count({ kind: 'blob', method: 'GET' }) >= 2, b.counter.summary());

  // Requests are logged with the registry from the CONNECT target (host and port).
  const coldLines = drp.requests({ request_type: 'blob-by-digest' });
  assert.ok(
    coldLines.some((l) => l.host === a.named),
    JSON.stringify(coldLines),
  );
  assert.ok(coldLines.some((l) => l.host === b.named));

  a.counter.reset();
  b.counter.reset();
  const before = drp.lines.length;
  const warmA = await pull(a, 'team/app:v1');
  const warmB = await pull(b, 'tools/cli:1.2.3');
  assert.equal(warmA.manifestDigest, imageA.manifestDigest);
  assert.equal(warmB.manifestDigest, imageB.manifestDigest);
  await Promise.all([a.counter.settle(), b.counter.settle()]);
  assert.equal(a.counter.count({ kind: 'blob', method: 'GET' }), 0, a.counter.summary());
  assert.equal(b.counter.count({ kind: 'blob', method: 'GET' }), 0, b.counter.summary());

  const warmBlobs = drp.lines
    .slice(before)
    .filter((l) => l.type === 'request' && l.request_type === 'blob-by-digest' && l.method === 'GET');
  assert.ok(warmBlobs.length >= 5, JSON.stringify(warmBlobs));
  for (const line of warmBlobs) assert.equal(line.upstream_cache_status, 'HIT', JSON.stringify(line));
  for (const line of drp.lines) {
    // Nothing secret, and never a query string, in any line.
    assert.doesNotMatch(JSON.stringify(line), /authorization|bearer|password|\?/i);
  }
});

test('a host that is not intercepted is tunnelled: the client sees the upstream certificate', async (t) => {
  const h = createHarness(t);
  const ca = await h.testCA();
  const [intercepted, plain] = await Promise.all([
    registryNamed(h, 'registry.test'),
    registryNamed(h, 'plain.test'),
  ]);
  const image = await h.createImage({ layers: [200_000] });
  await plain.push(image, 'direct/app:v1');
  const drp = await startDaemon(h, {
    REGISTRIES: intercepted.named,
    UPSTREAM_MAPPINGS: 'registry.test=127.0.0.1 plain.test=127.0.0.1',
    // Raw tunnels reach 443 and REGISTRIES' ports only: open the plain registry's port.
    TUNNEL_PORTS: String(plain.port),
    UPSTREAM_CA_FILE: ca.certPath,
    CACHE_DIR: h.tempDir('cache'),
    CA_DIR: h.tempDir('ca'),
  });

  // Through the tunnel the far end is the registry itself: the test CA's certificate.
  const tunnelled = await certificateVia(drp.port, plain.named, ca.certPem);
  assert.equal(tunnelled.issuer.CN, 'drp test CA');
  // An intercepted host gets a leaf from drp's CA, for the CONNECT target's name.
  const leaf = await certificateVia(drp.port, intercepted.named, drp.caPem);
  assert.notEqual(leaf.issuer.CN, 'drp test CA');
  assert.match(String(leaf.subjectaltname), /DNS:registry\.test/);

  // skopeo trusting only the registry's own CA pulls through the tunnel.
  const pulled = await h.pullImage(plain.named, 'direct/app:v1', { proxy: drp.url, certDir: ca.certDir });
  assert.equal(pulled.manifestDigest, image.manifestDigest);
  await new Promise((r) => setTimeout(r, 200));
  const tunnels = drp.lines.filter((l) => l.type === 'tunnel' && l.host === plain.named);
  assert.ok(tunnels.length >= 1, JSON.stringify(drp.lines));
  assert.ok(tunnels.some((l) => Number(l.bytes_out) > 200_000));
  assert.equal(drp.requests({ host: plain.named }).length, 0);
});

test('the CA survives a restart: a client that trusted the first run still trusts the second', async (t) => {
  const h = createHarness(t);
  const ca = await h.testCA();
  const registry = await registryNamed(h, 'registry.test');
  const image = await h.createImage({ layers: [100_000] });
  await registry.push(image, 'keep/ca:v1');
  const env = {
    REGISTRIES: registry.named,
    UPSTREAM_MAPPINGS: 'registry.test=127.0.0.1',
    UPSTREAM_CA_FILE: ca.certPath,
    CACHE_DIR: h.tempDir('cache'),
    CA_DIR: h.tempDir('ca'),
  };
  const first = await startDaemon(h, env);
  await h.pullImage(registry.named, 'keep/ca:v1', { proxy: first.url, certDir: first.certDir });
  await first.daemon.stop(10_000);
  assert.equal(await first.daemon.exited, 0);
  assert.equal(readFileSync(join(env.CA_DIR, 'ca.crt'), 'utf8'), first.caPem);

  const second = await startDaemon(h, env);
  assert.equal(second.caPem, first.caPem);
  assert.equal(second.lines.find((l) => l.type === 'startup')?.ca_origin, 'loaded');
  // The old certificate directory, not the new one.
  const pulled = await h.pullImage(registry.named, 'keep/ca:v1', {
    proxy: second.url,
    certDir: first.certDir,
  });
  assert.equal(pulled.manifestDigest, image.manifestDigest);
});

test('plain endpoints: /, /ca.crt, /setup/systemd, /healthz, /metrics; anything else is a 404 without a loop', async (t) => {
  const h = createHarness(t);
  const caDir = h.tempDir('ca');
  const drp = await startDaemon(h, { CACHE_DIR: h.tempDir('cache'), CA_DIR: caDir });

  const home = await get(`${drp.url}/`);
  assert.equal(home.status, 200);
  assert.match(home.body, /drp .*running/);
  assert.match(home.body, /registry-1\.docker\.io/);

  assert.equal(drp.caPem, readFileSync(join(caDir, 'ca.crt'), 'utf8'));
  assert.match(drp.caPem, /^-----BEGIN CERTIFICATE-----/);

  const script = await get(`${drp.url}/setup/systemd`, { host: `proxy.example:${drp.port}` });
  assert.equal(script.status, 200);
  assert.match(script.body, /^#!\/bin\/sh/);
  assert.match(script.body, /HTTPS_PROXY=\$PROXY_URL/);
  assert.match(script.body, /HTTP_PROXY=\$PROXY_URL/);
  assert.match(script.body, /NO_PROXY=/);
  assert.match(script.body, new RegExp(`http://proxy\\.example:${drp.port}`));
  assert.match(script.body, /update-ca-certificates/);
  assert.match(script.body, /systemctl daemon-reload/);
  assert.match(script.body, /systemctl restart docker/);
  const scriptFile = join(h.tempDir('script'), 'setup.sh');
  await writeFile(scriptFile, script.body);
  await h.run('sh', ['-n', scriptFile]);

  // A Host header that could inject shell is not pasted into the script.
  const hostile = await get(`${drp.url}/setup/systemd`, { host: 'x;rm -rf /' });
  assert.doesNotMatch(hostile.body, /rm -rf/);

  assert.deepEqual(await get(`${drp.url}/healthz`), { status: 200, body: '{"status":"ok"}\n' });
  const metrics = await get(`${drp.url}/metrics`);
  assert.equal(metrics.status, 200);
  assert.match(metrics.body, /drp_requests_total/);

  // Origin-form requests are never proxied, whatever their Host says. `/v2/` is mirror mode's
  // root ping, answered by drp itself (docs/clients/mirror.md), not by the Host's registry.
  assert.deepEqual(await get(`${drp.url}/v2/`, { host: 'registry-1.docker.io' }), {
    status: 200,
    body: '{}',
  });
  assert.equal((await get(`${drp.url}/nope`, { host: `127.0.0.1:${drp.port}` })).status, 404);
  // The line is printed just after the response: give it a moment.
  for (let i = 0; i < 100 && drp.requests().length === 0; i += 1) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(
    drp.requests().map((l) => [l.host, l.uri, l.request_type, l.status]),
    [['-', '/v2/', 'ping', 200]],
  );
});

test('bad configuration exits with status 2 and a message naming the variable', async (t) => {
  const h = createHarness(t);
  const cases: { env?: Record<string, string>; args?: string[]; message: RegExp }[] = [
    {
      env: { PORT: '70000' },
      message: /^drp-server: invalid PORT: expected a port number from 0 to 65535, got "70000"/,
    },
    { env: { REGISTRIES: 'https://ghcr.io' }, message: /invalid REGISTRIES: expected host names/ },
    { env: { CACHE_MAX_SIZE: 'lots' }, message: /invalid CACHE_MAX_SIZE: expected a size such as/ },
    {
      env: { MANIFEST_CACHE_DEFAULT_TIME: 'soon' },
      message: /invalid MANIFEST_CACHE_DEFAULT_TIME: expected a duration/,
    },
    {
      env: { ENABLE_MANIFEST_CACHE: 'maybe' },
      message: /invalid ENABLE_MANIFEST_CACHE: expected true or false/,
    },
    {
      env: { UPSTREAM_MAPPINGS: 'a.test' },
      message: /invalid UPSTREAM_MAPPINGS: expected .*host\[:port\]=address/,
    },
    {
      env: { UPSTREAM_CA_FILE: '/nonexistent/ca.pem' },
      message: /invalid UPSTREAM_CA_FILE: expected a readable file/,
    },
    { env: { LOG_FORMAT: 'xml' }, message: /invalid LOG_FORMAT: expected json or text/ },
    { args: ['--port', 'http'], message: /invalid --port \(PORT\): expected a port number/ },
    { args: ['--no-such-flag'], message: /no-such-flag/ },
    {
      env: { AUTH_REGISTRIES: 'ghcr.io:alice:pa:ss-SECRET' },
      message: /invalid AUTH_REGISTRIES: entry 1 \(host ghcr\.io\) has 4 field/,
    },
  ];
  await Promise.all(
    cases.map(async ({ env = {}, args = [], message }) => {
      const result = await h.run(process.execPath, [BIN, ...args], {
        env: { CACHE_DIR: h.tempDir('cache'), CA_DIR: h.tempDir('ca'), PORT: '0', ...env },
        check: false,
        timeoutMs: 20_000,
      });
      assert.equal(result.code, 2, `${JSON.stringify(env)} ${args}: ${result.stderr}`);
      assert.match(result.stderr, message);
      assert.doesNotMatch(result.stderr, /SECRET|alice|\n\s+at /);
      assert.equal(result.stdout, '');
    }),
  );
});

test('--help lists the flags and every variable', async (t) => {
  const h = createHarness(t);
  const result = await h.run(process.execPath, [BIN, '--help']);
  for (const name of [
    'REGISTRIES',
    'AUTH_REGISTRIES',
    'PROXY_CONNECT_SEND_TIMEOUT',
    'CA_SRL_FILE',
    'UPSTREAM_MAPPINGS',
  ]) {
    assert.match(result.stdout, new RegExp(`\\b${name}\\b`));
  }
  assert.match(result.stdout, /--port/);
});

test('SIGTERM in the middle of a pull: the transfer finishes, then the daemon exits 0', async (t) => {
  const h = createHarness(t);
  const ca = await h.testCA();
  // The front keeps the client's Host, and Node checks the upstream certificate against it.
  const registry = await h.startRegistry({ names: ['slow.test'] });
  const image = await h.createImage({ layers: [6_000_000] });
  await registry.push(image, 'slow/pull:v1');
  const big = image.layers[0]!.digest;
  let drp: RunningDaemon | undefined;
  let signalledAt = 0;
  let newClient: Promise<boolean> | undefined;
  let health: Promise<number> | undefined;
  const front = await h.startFront({
    upstream: registry,
    names: ['slow.test'],
    onRequest(req, _res, forward) {
      if (req.method === 'GET' && req.url?.endsWith(big)) {
        // The layer is half sent when the daemon is told to stop; the rest comes 1.5 s later.
        setTimeout(() => {
          signalledAt = Date.now();
          process.kill(drp!.daemon.pid, 'SIGTERM');
          // A client that was not pulling is turned away while the pull goes on.
          setTimeout(() => {
            newClient = refused(drp!.port, '127.0.0.2');
            health = get(`${drp!.url}/healthz`).then((r) => r.status);
          }, 200);
        }, 300);
        return forward({ stallAfter: { bytes: 3_000_000, ms: 1500 } });
      }
      return forward();
    },
  });
  const named = `slow.test:${front.port}`;
  drp = await startDaemon(h, {
    REGISTRIES: named,
    UPSTREAM_MAPPINGS: 'slow.test=127.0.0.1',
    UPSTREAM_CA_FILE: ca.certPath,
    CACHE_DIR: h.tempDir('cache'),
    CA_DIR: h.tempDir('ca'),
    SHUTDOWN_TIMEOUT: '20s',
  });
  const pulled = await h
    .pullImage(named, 'slow/pull:v1', { proxy: drp.url, certDir: drp.certDir })
    .catch((e: unknown) => {
      throw new Error(`${String(e)}\n--- drp-server ---\n${drp?.daemon.output()}`);
    });
  assert.equal(pulled.manifestDigest, image.manifestDigest);
  assert.deepEqual(pulled.layers, [big]);
  assert.ok(signalledAt > 0, 'the daemon was signalled during the pull');
  assert.equal(await drp.daemon.exited, 0);
  const waited = Date.now() - signalledAt;
  assert.ok(waited >= 1000, `exited ${waited} ms after SIGTERM`);
  assert.ok(drp.lines.some((l) => l.type === 'shutdown'));
  assert.equal(await newClient, true, 'a new client was refused during the drain');
  assert.equal(await health, 503, '/healthz says it is shutting down');
  const blobLine = drp
    .requests({ request_type: 'blob-by-digest', status: 200 })
    .find((l) => l.bytes_sent === image.layers[0]!.size);
  assert.ok(blobLine, JSON.stringify(drp.lines));
  await mkdir(h.tempDir('after'), { recursive: true });
});
