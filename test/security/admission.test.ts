// Admission end to end through drp-server: ALLOWED_CLIENTS (403 for CONNECT, absolute-form
// requests and the endpoints, /ca.crt and /healthz stay open) and PROXY_AUTH / PROXY_AUTH_FILE
// (407 for proxy requests, 401 for /metrics, real skopeo and curl pulling with credentials in
// HTTPS_PROXY). Tests run from loopback, so "a client that is not allowed" is 127.0.0.1 with
// ALLOWED_CLIENTS not containing it.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { createHarness, RunError } from '../harness/index.ts';
import { BIN, registryNamed, startDaemon } from '../integration/daemon-lib.ts';
import { basic, linesOf, rawConnect, request } from './lib.ts';

test('ALLOWED_CLIENTS: a client outside the ranges gets 403 for CONNECT, proxy requests and endpoints; /ca.crt and /healthz stay open', async (t) => {
  const h = createHarness(t);
  const drp = await startDaemon(h, {
    ALLOWED_CLIENTS: '10.0.0.0/8, 192.168.0.0/16',
    REGISTRIES: 'registry.test:5000',
    CACHE_DIR: h.tempDir('cache'),
    CA_DIR: h.tempDir('ca'),
  });
  assert.equal((await request(drp.port, '/ca.crt')).status, 200);
  assert.equal((await request(drp.port, '/healthz')).status, 200);
  for (const path of ['/', '/metrics', '/setup/systemd', '/nothing-here']) {
    assert.equal((await request(drp.port, path)).status, 403, path);
  }
  const intercepted = await rawConnect(drp.port, 'registry.test:5000');
  assert.equal(intercepted.status, 403);
  await intercepted.closed;
  const tunnel = await rawConnect(drp.port, 'elsewhere.test:443');
  assert.equal(tunnel.status, 403);
  await tunnel.closed;
  const forward = await request(drp.port, 'http://elsewhere.test/page', { host: 'elsewhere.test' });
  assert.equal(forward.status, 403);
  const plainRegistry = await request(drp.port, 'http://registry.test:5000/v2/', {
    host: 'registry.test:5000',
  });
  assert.equal(plainRegistry.status, 403);

  // One line per refusal: 4 endpoints, 2 CONNECTs, 2 absolute-form requests.
  const refused = await linesOf(drp, 'refused', 8);
  assert.equal(refused.length, 8, JSON.stringify(drp.lines));
  assert.ok(refused.every((l) => l.status === 403 && l.client === '127.0.0.1'));
  assert.ok(refused.some((l) => l.kind === 'connect' && l.target === 'registry.test:5000'));
  assert.equal(drp.requests().length, 0);

  // `all` opens it again, as the original was.
  await drp.daemon.stop(5000);
  const open = await startDaemon(h, {
    ALLOWED_CLIENTS: 'all',
    CACHE_DIR: h.tempDir('c2'),
    CA_DIR: h.tempDir('a2'),
  });
  assert.equal((await request(open.port, '/metrics')).status, 200);
});

test('a bad admission variable stops drp-server with exit 2 naming it', async (t) => {
  const h = createHarness(t);
  const result = await h.run(process.execPath, [BIN], {
    env: {
      PORT: '0',
      BIND: '127.0.0.1',
      ALLOWED_CLIENTS: '10.0.0.0/33',
      CACHE_DIR: h.tempDir('c'),
      CA_DIR: h.tempDir('a'),
    },
    check: false,
  });
  assert.equal(result.code, 2, result.stderr);
  assert.match(result.stderr, /invalid ALLOWED_CLIENTS: expected CIDR/);
});

test('PROXY_AUTH and PROXY_AUTH_FILE: skopeo and curl pull with credentials in the proxy URL; 407 without, 401 on /metrics', async (t) => {
  const h = createHarness(t);
  const ca = await h.testCA();
  const registry = await registryNamed(h, 'registry.test');
  const image = await h.createImage({ layers: [300_000] });
  await registry.push(image, 'auth/app:v1');
  const htpasswd = join(h.dir, 'proxy.htpasswd');
  const entry = await h.run('htpasswd', ['-nbB', 'filed', 'from file']);
  await writeFile(htpasswd, `# drp users\n${entry.stdout.trim()}\n`);
  const drp = await startDaemon(h, {
    REGISTRIES: registry.named,
    UPSTREAM_MAPPINGS: 'registry.test=127.0.0.1',
    UPSTREAM_CA_FILE: ca.certPath,
    PROXY_AUTH: 'puller:s3cret:with:colons',
    PROXY_AUTH_FILE: htpasswd,
    CACHE_DIR: h.tempDir('cache'),
    CA_DIR: h.tempDir('ca'),
  });
  const withCreds = (user: string, password: string) =>
    `http://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${drp.port}`;

  // Real clients: skopeo (Go's proxy support) with user:password in HTTPS_PROXY.
  const plain = await h.pullImage(registry.named, 'auth/app:v1', {
    proxy: withCreds('puller', 's3cret:with:colons'),
    certDir: drp.certDir,
  });
  assert.equal(plain.manifestDigest, image.manifestDigest);
  const filed = await h.pullImage(registry.named, 'auth/app:v1', {
    proxy: withCreds('filed', 'from file'),
    certDir: drp.certDir,
  });
  assert.equal(filed.manifestDigest, image.manifestDigest);
  await assert.rejects(
    h.pullImage(registry.named, 'auth/app:v1', { proxy: drp.url, certDir: drp.certDir }),
    (e: unknown) => e instanceof RunError && /407|Proxy Authentication Required/i.test(e.message),
  );
  await assert.rejects(
    h.pullImage(registry.named, 'auth/app:v1', { proxy: withCreds('filed', 'wrong'), certDir: drp.certDir }),
    (e: unknown) => e instanceof RunError,
  );

  // curl: --proxy-user, and without.
  const curl = (extra: string[]) =>
    h.run(
      'curl',
      [
        '-s',
        '-o',
        '/dev/null',
        '-w',
        '%{http_code} %{http_connect}',
        '--cacert',
        join(drp.certDir, 'ca.crt'),
        '-x',
        drp.url,
        ...extra,
        `https://${registry.named}/v2/`,
      ],
      { env: { NO_PROXY: '', no_proxy: '' }, check: false },
    );
  assert.match((await curl(['--proxy-user', 'puller:s3cret:with:colons'])).stdout, /^(200|401) 200$/);
  assert.match((await curl([])).stdout, / 407$/);
  assert.match((await curl(['--proxy-user', 'puller:nope'])).stdout, / 407$/);

  // The answers themselves.
  const noAuth = await rawConnect(drp.port, registry.named);
  assert.equal(noAuth.status, 407);
  assert.match(noAuth.head, /\r\nproxy-authenticate: Basic realm="drp"/i);
  await noAuth.closed;
  const absolute = await request(drp.port, 'http://elsewhere.test/', { host: 'elsewhere.test' });
  assert.equal(absolute.status, 407);
  assert.equal(absolute.headers['proxy-authenticate'], 'Basic realm="drp"');
  assert.equal((await request(drp.port, '/ca.crt')).status, 200);
  assert.equal((await request(drp.port, '/healthz')).status, 200);
  for (const path of ['/metrics', '/setup/systemd', '/']) {
    const denied = await request(drp.port, path);
    assert.equal(denied.status, 401, path);
    assert.equal(denied.headers['www-authenticate'], 'Basic realm="drp"');
    assert.equal((await request(drp.port, path, { authorization: basic('filed', 'wrong') })).status, 401);
    assert.equal(
      (await request(drp.port, path, { authorization: basic('filed', 'from file') })).status,
      200,
      path,
    );
  }
  // Proxy-Authorization is for proxy requests; Authorization is for endpoints: not interchangeable.
  assert.equal(
    (await request(drp.port, '/metrics', { 'proxy-authorization': basic('filed', 'from file') })).status,
    401,
  );

  const refused = await linesOf(drp, 'refused', 1);
  assert.ok(refused.some((l) => l.status === 407 && l.kind === 'connect'));
  assert.ok(refused.some((l) => l.status === 401 && l.kind === 'endpoint'));
  // No credential in any line.
  assert.doesNotMatch(JSON.stringify(drp.lines), /s3cret|from file|Basic /);
});
