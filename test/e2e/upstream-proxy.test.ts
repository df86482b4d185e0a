// UPSTREAM_PROXY against a real squid on loopback: drp's own upstream connections go through it
// with CONNECT (to the UPSTREAM_MAPPINGS address), with and without proxy authentication;
// UPSTREAM_NO_PROXY bypasses it; a proxy that is down or refuses gives clients a clean 502 and a
// log line naming the proxy, never its password. Squid writes an access-log line when a tunnel
// closes, so drp is stopped (closing its keep-alive tunnels) before squid's log is read.
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { startTokenRegistry } from '../fakes/token-registry.ts';
import { startTokenServer } from '../fakes/token-server.ts';
import { createHarness } from '../harness/index.ts';
import { type Drp, describe, settleLog, startDrp } from './lib/daemon.ts';
import { startSquid } from './lib/squid.ts';

const USER = 'drp-user';
const PASSWORD = 'Pr0xy-Pa55';

async function setup(t: TestContext, auth: boolean) {
  const h = createHarness(t);
  const ca = await h.testCA();
  const registry = await h.startRegistry({ names: ['registry.test'] });
  const image = await h.createImage({ layers: [400_000, 800_000] });
  await registry.push(image, 'team/app:v1');
  await registry.counter.settle();
  registry.counter.reset();
  const squid = await startSquid(h, {
    connectPorts: [registry.port],
    ...(auth ? { auth: { username: USER, password: PASSWORD } } : {}),
  });
  const start = (env: Record<string, string>) =>
    startDrp(h, {
      env: {
        REGISTRIES: registry.namedHostPort,
        UPSTREAM_MAPPINGS: 'registry.test=127.0.0.1',
        UPSTREAM_CA_FILE: ca.certPath,
        CACHE_DIR: h.tempDir('cache'),
        CA_DIR: h.tempDir('ca'),
        // Set on purpose: drp must ignore them (they would make it proxy to itself or nowhere).
        HTTPS_PROXY: 'http://127.0.0.1:9',
        HTTP_PROXY: 'http://127.0.0.1:9',
        ...env,
      },
    });
  return { h, registry, image, squid, start, named: registry.namedHostPort };
}

async function pullThrough(
  h: ReturnType<typeof createHarness>,
  drp: Drp,
  named: string,
  digest: string,
): Promise<void> {
  const pulled = await h.pullImage(named, 'team/app:v1', { proxy: drp.url, certDir: drp.certDir });
  assert.equal(pulled.manifestDigest, digest);
}

/** A mirror-mode request for the manifest (curl, no proxy): status and body. */
async function mirrorGet(h: ReturnType<typeof createHarness>, drp: Drp, named: string) {
  const out = await h.run('curl', [
    '-sS',
    '--noproxy',
    '*',
    '-w',
    '\n%{http_code}',
    `${drp.url}/v2/team/app/manifests/v1?ns=${named}`,
  ]);
  const at = out.stdout.lastIndexOf('\n');
  return { status: Number(out.stdout.slice(at + 1)), body: out.stdout.slice(0, at) };
}

test('a cold pull goes through squid with CONNECT to the mapped address; HTTPS_PROXY in drp env is ignored', async (t) => {
  const { h, registry, image, squid, start, named } = await setup(t, false);
  const drp = await start({ UPSTREAM_PROXY: squid.url });
  assert.equal(drp.startup.upstream_proxy, squid.url);
  const notice = drp.lines.find((l) => l.type === 'notice' && /HTTPS_PROXY/.test(String(l.msg)));
  assert.ok(notice, JSON.stringify(drp.lines));
  await pullThrough(h, drp, named, image.manifestDigest);
  await registry.counter.settle();
  assert.ok(registry.counter.count({ kind: 'blob', method: 'GET' }) >= 3, registry.counter.summary());
  await drp.stop();
  const connects = await squid.connects();
  assert.ok(connects.length >= 1, (await squid.accessLog()).join('\n'));
  assert.ok(
    connects.every((c) => c === `127.0.0.1:${registry.port}`),
    connects.join('\n'),
  );
});

test('squid with basic_ncsa_auth: credentials from UPSTREAM_PROXY; a wrong password is a 502 naming the proxy', async (t) => {
  const { h, image, squid, start, named } = await setup(t, true);
  const good = await start({ UPSTREAM_PROXY: `http://${USER}:${PASSWORD}@127.0.0.1:${squid.port}` });
  assert.equal(good.startup.upstream_proxy, squid.url, 'shown without credentials');
  await pullThrough(h, good, named, image.manifestDigest);
  await good.stop();
  const authed = (await squid.accessLog()).filter((l) => / CONNECT /.test(l) && l.includes(` ${USER} `));
  assert.ok(authed.length >= 1, (await squid.accessLog()).join('\n'));
  assert.ok(!good.output().includes(PASSWORD));

  const bad = await start({ UPSTREAM_PROXY: `http://${USER}:Wr0ng-Pa55@127.0.0.1:${squid.port}` });
  const answer = await mirrorGet(h, bad, named);
  assert.equal(answer.status, 502, answer.body);
  const error = (JSON.parse(answer.body) as { errors: { message: string }[] }).errors[0];
  assert.match(
    error?.message ?? '',
    new RegExp(`upstream proxy ${squid.url} rejected the credentials in its URL \\(407`),
  );
  await settleLog(bad);
  const [line] = bad.requests({ status: 502 });
  assert.ok(line, describe(bad.lines));
  assert.equal(line.error, 'DRP_UPSTREAM_PROXY');
  assert.equal(line.upstream_proxy, squid.url);
  assert.ok(!bad.output().includes('Wr0ng-Pa55') && !answer.body.includes('Wr0ng-Pa55'));
});

test('UPSTREAM_NO_PROXY bypasses squid for the hosts it lists', async (t) => {
  const { h, image, squid, start, named } = await setup(t, false);
  const drp = await start({
    UPSTREAM_PROXY: squid.url,
    UPSTREAM_NO_PROXY: 'other.example, .corp.example,10.0.0.0/8,registry.test',
  });
  await pullThrough(h, drp, named, image.manifestDigest);
  await drp.stop();
  assert.deepEqual(await squid.connects(), []);
});

test('squid stopped: a clean 502 at once, with the proxy named in the body and the log', async (t) => {
  const { h, squid, start, named } = await setup(t, false);
  const drp = await start({ UPSTREAM_PROXY: squid.url });
  await squid.stop();
  const started = Date.now();
  const answer = await mirrorGet(h, drp, named);
  assert.equal(answer.status, 502, answer.body);
  assert.ok(Date.now() - started < 5000);
  assert.match(answer.body, new RegExp(`upstream proxy ${squid.url} unreachable: ECONNREFUSED`));
  await settleLog(drp);
  const [line] = drp.requests({ status: 502 });
  assert.equal(line?.upstream_proxy, squid.url, describe(drp.lines));
});

test('token servers go through squid too: a mirror client without credentials, a token registry', async (t) => {
  const h = createHarness(t);
  const ca = await h.testCA();
  const tokens = await startTokenServer(h, {
    service: 'registry.test',
    issuer: 'drp-test-issuer',
    users: { robot: 's3cret' },
    publicRepos: ['public/app'],
  });
  const registry = await startTokenRegistry(h, tokens);
  const image = await h.createImage({ layers: [100_000] });
  await registry.push(image, 'public/app:v1', { creds: 'robot:s3cret' });
  const squid = await startSquid(h, { connectPorts: [registry.port, tokens.port] });
  const drp = await startDrp(h, {
    env: {
      // The token realm is configured, as auth.docker.io is for Docker Hub.
      REGISTRIES: `${registry.namedHostPort} 127.0.0.1:${tokens.port}`,
      UPSTREAM_MAPPINGS: 'registry.test=127.0.0.1',
      UPSTREAM_CA_FILE: ca.certPath,
      UPSTREAM_PROXY: squid.url,
      CACHE_DIR: h.tempDir('cache'),
      CA_DIR: h.tempDir('ca'),
    },
  });
  const out = await h.run('curl', [
    '-sS',
    '--noproxy',
    '*',
    '-o',
    '/dev/null',
    '-w',
    '%{http_code}',
    '-H',
    'Accept: application/vnd.oci.image.manifest.v1+json',
    `${drp.url}/v2/public/app/manifests/v1?ns=${registry.namedHostPort}`,
  ]);
  assert.equal(out.stdout, '200');
  assert.equal(tokens.requests.filter((r) => r.user === undefined).length, 1);
  await drp.stop();
  const connects = new Set(await squid.connects());
  assert.deepEqual([...connects].sort(), [`127.0.0.1:${registry.port}`, `127.0.0.1:${tokens.port}`].sort());
});
