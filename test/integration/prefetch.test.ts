// `drp-server prefetch` through a running daemon: an open registry (a multi-platform index and
// an image), a Docker Hub–style front (Bearer tokens from a realm, rate-limit headers) and an
// htpasswd registry (Basic, credentials from a docker-style auth file). Afterwards a skopeo pull
// of the same images makes no upstream blob request.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { humanBytes } from '../../packages/server/src/commands/output.ts';
import { startHubFront } from '../fakes/hub-front.ts';
import { startTokenServer } from '../fakes/token-server.ts';
import { createHarness } from '../harness/index.ts';
import { BIN, registryNamed, startDaemon } from './daemon-lib.ts';

const PLATFORMS = [
  { os: 'linux', architecture: 'amd64' },
  { os: 'linux', architecture: 'arm64' },
];

test('prefetch warms the cache for every platform; the next pulls make no upstream blob request', async (t) => {
  const h = createHarness(t);
  const ca = await h.testCA();
  const open = await registryNamed(h, 'registry.test');
  const behindHub = await h.startRegistry();
  const secret = await h.startRegistry({
    names: ['private.test'],
    auth: { username: 'ops', password: 's3cret' },
  });
  const tokens = await startTokenServer(h, {
    service: 'registry.docker.io',
    issuer: 'auth.docker.io',
    users: {},
    publicRepos: ['library/app'],
    names: ['auth.test'],
  });
  const hub = await startHubFront(h, { upstream: behindHub, tokens, limit: 1000 });

  const [index, app, hubApp, secretApp, armOnly] = await Promise.all([
    h.createIndex(PLATFORMS, [150_000, 250_000]),
    h.createImage({ layers: [400_000], format: 'docker' }),
    h.createImage({ layers: [300_000] }),
    h.createImage({ layers: [200_000] }),
    h.createIndex(PLATFORMS, [100_000]),
  ]);
  await open.push(index, 'team/multi:1');
  await open.push(app, 'team/app:1');
  await open.push(armOnly, 'team/arm:1');
  await behindHub.push(hubApp, 'library/app:latest');
  await secret.push(secretApp, 'team/secret:1');

  const hubRef = `hub.test:${hub.port}`;
  const secretRef = `private.test:${secret.port}`;
  const drp = await startDaemon(h, {
    REGISTRIES: `${open.named} ${hubRef} auth.test:${tokens.port} ${secretRef}`,
    UPSTREAM_MAPPINGS:
      'registry.test=127.0.0.1 hub.test=127.0.0.1 auth.test=127.0.0.1 private.test=127.0.0.1',
    UPSTREAM_CA_FILE: ca.certPath,
    CACHE_DIR: h.tempDir('cache'),
    CA_DIR: h.tempDir('ca'),
  });
  const authDir = h.tempDir('docker');
  const authFile = join(authDir, 'config.json');
  await writeFile(
    authFile,
    JSON.stringify({ auths: { [secretRef]: { auth: Buffer.from('ops:s3cret').toString('base64') } } }),
  );
  const listFile = join(authDir, 'images.txt');
  await writeFile(listFile, `# from a file\n${hubRef}/library/app:latest\n\n${secretRef}/team/secret:1\n`);

  for (const r of [open, behindHub, secret]) {
    await r.counter.settle();
    r.counter.reset();
  }
  const prefetch = (...args: string[]) =>
    h.run(process.execPath, [BIN, 'prefetch', '--proxy', drp.url, ...args], {
      check: false,
      env: { DOCKER_CONFIG: h.tempDir('no-docker-config') },
    });

  // No --ca-file: the proxy's CA comes from its /ca.crt. Not a TTY: one summary line.
  const run = await prefetch(
    '--concurrency',
    '2',
    '--authfile',
    authFile,
    '--file',
    listFile,
    `${open.named}/team/multi:1`,
    `${open.named}/team/app:1`,
  );
  assert.equal(run.code, 0, run.stdout + run.stderr);
  const blobBytes = [...index.children, app, hubApp, secretApp].reduce(
    (sum, i) => sum + i.config.size + i.layers.reduce((n, l) => n + l.size, 0),
    0,
  );
  assert.match(
    run.stdout,
    new RegExp(
      `^prefetch: 4/4 images, 6 manifests, 12 blobs \\(${humanBytes(blobBytes).replace('.', '\\.')}\\) in [\\d.]+ s\n$`,
    ),
  );
  await open.counter.settle();
  const fetched = open.counter.requests({ kind: 'blob', method: 'GET' }).map((r) => r.path.split('/').pop());
  const expected = [...index.children.flatMap((c) => [c.config.digest, ...c.layers.map((l) => l.digest)])];
  for (const digest of expected) assert.ok(fetched.includes(digest), `${digest} was prefetched`);
  assert.ok(tokens.requests.length > 0, 'the Bearer challenge was answered with a token from the realm');

  for (const r of [open, behindHub, secret]) r.counter.reset();
  const via = { proxy: drp.url, certDir: drp.certDir };
  const multi = await h.pullImage(open.named, 'team/multi:1', { ...via, all: true });
  assert.equal(multi.manifestDigest, index.manifestDigest);
  await h.pullImage(open.named, 'team/app:1', via);
  await h.pullImage(hubRef, 'library/app:latest', { ...via, creds: null });
  await h.pullImage(secretRef, 'team/secret:1', { ...via, creds: { username: 'ops', password: 's3cret' } });
  for (const r of [open, behindHub, secret]) {
    await r.counter.settle();
    assert.equal(r.counter.count({ kind: 'blob', method: 'GET' }), 0, r.counter.summary());
  }

  // --platform: only that platform's manifest and blobs.
  open.counter.reset();
  const arm = await prefetch(
    '--platform',
    'linux/arm64',
    '--ca-file',
    join(drp.certDir, 'ca.crt'),
    `${open.named}/team/arm:1`,
  );
  assert.equal(arm.code, 0, arm.stderr);
  await open.counter.settle();
  const armChild = armOnly.children.find((c) => c.platform.architecture === 'arm64');
  assert.deepEqual(
    open.counter
      .requests({ kind: 'blob', method: 'GET' })
      .map((r) => r.path.split('/').pop())
      .sort(),
    [armChild?.config.digest, ...(armChild?.layers.map((l) => l.digest) ?? [])].sort(),
  );

  // Failures are named, the others still fetched, exit 1.
  const failed = await prefetch(
    `${open.named}/team/missing:1`,
    `${secretRef}/team/secret:1`,
    `${open.named}/team/app:1`,
  );
  assert.equal(failed.code, 1);
  assert.match(failed.stderr, new RegExp(`FAILED ${open.named}/team/missing:1: .*404`));
  assert.match(failed.stderr, new RegExp(`FAILED ${secretRef}/team/secret:1: .*credentials`));
  assert.match(
    failed.stdout,
    new RegExp(
      `1/3 images.*failed: ${open.named}/team/missing:1 ${secretRef}/team/secret:1|failed: ${secretRef}/team/secret:1 ${open.named}/team/missing:1`,
    ),
  );

  // Proxy credentials from the URL go out as Proxy-Authorization: an authenticating relay in
  // front of drp (drp itself has no proxy authentication) refuses CONNECTs without them.
  const seen: (string | undefined)[] = [];
  const relay = http.createServer((_req, res) => res.writeHead(407).end());
  relay.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    seen.push(req.headers['proxy-authorization']);
    if (req.headers['proxy-authorization'] !== `Basic ${Buffer.from('me:p@ss word').toString('base64')}`) {
      client.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n');
      return;
    }
    const upstream = net.connect(drp.port, '127.0.0.1', () => {
      upstream.write(`CONNECT ${req.url} HTTP/1.1\r\nhost: ${req.url}\r\n\r\n`);
      upstream.write(head);
      client.pipe(upstream).pipe(client);
    });
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  const sockets = new Set<net.Socket>();
  relay.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  h.defer(() => {
    // Tunnels are not HTTP connections: close() alone would wait for them.
    for (const socket of sockets) socket.destroy();
    return new Promise<void>((resolve) => relay.close(() => resolve()));
  });
  const relayPort = (relay.address() as net.AddressInfo).port;
  const caFile = join(drp.certDir, 'ca.crt');
  const viaRelay = (url: string) =>
    h.run(
      process.execPath,
      [BIN, 'prefetch', '--proxy', url, '--ca-file', caFile, `${open.named}/team/app:1`],
      {
        check: false,
      },
    );
  const authed = await viaRelay(`http://me:p%40ss%20word@127.0.0.1:${relayPort}`);
  assert.equal(authed.code, 0, authed.stderr);
  const refusedRun = await viaRelay(`http://127.0.0.1:${relayPort}`);
  assert.equal(refusedRun.code, 1);
  assert.match(refusedRun.stderr, /FAILED .*407/);
  assert.deepEqual(seen.slice(-1), [undefined]);

  // A proxy that is not there: exit 1 with the reason, not a usage message.
  const gone = await h.run(process.execPath, [BIN, 'prefetch', '--proxy', 'http://127.0.0.1:1', 'alpine'], {
    check: false,
  });
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /ECONNREFUSED/);
  assert.doesNotMatch(gone.stderr, /Usage/);

  const usage = await prefetch();
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /no images given/);
});
