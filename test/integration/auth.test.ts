// Central credentials against real registries: htpasswd (Basic) and token auth (distribution's
// `auth.token` with a Docker Hub-protocol token server). A client without credentials pulls a
// private image with the injected ones; a client with its own keeps them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseAuthRegistries } from '../../packages/core/src/index.ts';
import { startMiniProxy } from '../fakes/mini-proxy.ts';
import { startTokenRegistry } from '../fakes/token-registry.ts';
import { startTokenServer } from '../fakes/token-server.ts';
import { createHarness, pushImage } from '../harness/index.ts';

test('htpasswd registry: injected credentials for a client without any; own credentials kept', async (t) => {
  const h = createHarness(t);
  const registry = await h.startRegistry({ auth: { username: 'svc', password: 'pa:ss w0rd' } });
  const image = await h.createImage({ layers: [200_000, 300_000] });
  await registry.push(image, 'private/app:v1');

  const credentials = parseAuthRegistries(`registry.test;;;svc;;;pa:ss w0rd`, {
    entryDelimiter: '\n',
    fieldDelimiter: ';;;',
  });
  const proxy = await startMiniProxy(h, {
    names: ['registry.test'],
    credentials,
    manifestCache: { enabled: true },
  });
  const source = registry.namedHostPort;

  const pulled = await h.pullImage(source, 'private/app:v1', {
    proxy: proxy.url,
    certDir: proxy.certDir,
    creds: null,
  });
  assert.equal(pulled.manifestDigest, image.manifestDigest);

  // Go clients only send their credentials when challenged, and with injected credentials the
  // registry never challenges them. A client that does send its own Authorization keeps it:
  // wrong credentials get upstream's 401, not the configured account's answer.
  const curl = (user: string) =>
    h.run('curl', [
      '-s',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '--proxy',
      proxy.url,
      '--cacert',
      `${proxy.certDir}/ca.crt`,
      '-u',
      user,
      '-H',
      `Accept: ${image.mediaType}`,
      `https://${source}/v2/private/app/manifests/v1`,
    ]);
  assert.equal((await curl('svc:wrong')).stdout, '401');
  assert.equal((await curl('svc:pa:ss w0rd')).stdout, '200');
  // Own right credentials work, through the same cache.
  const own = await h.pullImage(source, 'private/app:v1', {
    proxy: proxy.url,
    certDir: proxy.certDir,
    creds: 'svc:pa:ss w0rd',
  });
  assert.equal(own.manifestDigest, image.manifestDigest);
  const logged = JSON.stringify(proxy.outcomes);
  assert.ok(!logged.includes('w0rd'), 'no credentials in request events');
});

test('token auth: the token request gets the configured account; own credentials are kept', async (t) => {
  const h = createHarness(t);
  const tokens = await startTokenServer(h, {
    service: 'registry.test',
    issuer: 'drp-test-issuer',
    users: { robot: 's3cret', alice: 'alicepw' },
    names: ['auth.test'],
  });
  const registry = await startTokenRegistry(h, tokens);
  const image = await h.createImage({ layers: [150_000, 250_000] });
  // Seed it through drp itself (push allowed): the token realm is only reachable by name.
  const seeder = await startMiniProxy(h, { names: ['registry.test', 'auth.test'], allowPush: true });
  await pushImage(image, registry.namedHostPort, 'private/app:v1', {
    creds: 'robot:s3cret',
    certDir: seeder.certDir,
    env: { HTTPS_PROXY: seeder.url, https_proxy: seeder.url, NO_PROXY: '', no_proxy: '' },
  });
  tokens.requests.length = 0;

  const proxy = await startMiniProxy(h, {
    names: ['registry.test', 'auth.test'],
    credentials: parseAuthRegistries('auth.test:robot:s3cret'),
    manifestCache: { enabled: true },
  });
  const pulled = await h.pullImage(registry.namedHostPort, 'private/app:v1', {
    proxy: proxy.url,
    certDir: proxy.certDir,
    creds: null,
  });
  assert.equal(pulled.manifestDigest, image.manifestDigest);
  assert.ok(tokens.requests.length >= 1);
  for (const r of tokens.requests)
    assert.equal(r.user, 'robot', 'token requests carry the configured account');
  const tokenOutcomes = proxy.outcomes.filter((o) => o.requestType === 'auth');
  assert.ok(tokenOutcomes.length >= 1, 'token requests are recognised');
  assert.ok(
    tokenOutcomes.every((o) => o.cacheStatus === 'BYPASS'),
    'token responses are never cached',
  );

  // A second anonymous pull is served the tag from the cache (its token was issued to the
  // injected account, so it is in the same auth class).
  const before = registry.counter.count({ kind: 'manifest', method: 'GET' });
  await h.pullImage(registry.namedHostPort, 'private/app:v1', {
    proxy: proxy.url,
    certDir: proxy.certDir,
    creds: null,
  });
  await registry.counter.settle();
  assert.equal(registry.counter.count({ kind: 'manifest', method: 'GET' }), before);
  assert.ok(proxy.outcomes.some((o) => o.requestType === 'manifest-default' && o.cacheStatus === 'HIT'));

  // A client with its own credentials keeps them.
  tokens.requests.length = 0;
  const own = await h.pullImage(registry.namedHostPort, 'private/app:v1', {
    proxy: proxy.url,
    certDir: proxy.certDir,
    creds: 'alice:alicepw',
  });
  assert.equal(own.manifestDigest, image.manifestDigest);
  assert.ok(tokens.requests.length >= 1);
  for (const r of tokens.requests) assert.equal(r.user, 'alice');

  // Without injected credentials, an anonymous client gets no access to the private image.
  const bare = await startMiniProxy(h, {
    names: ['registry.test', 'auth.test'],
    manifestCache: { enabled: true },
  });
  await assert.rejects(
    h.pullImage(registry.namedHostPort, 'private/app:v1', {
      proxy: bare.url,
      certDir: bare.certDir,
      creds: null,
    }),
    /unauthorized|denied|401|authentication required/i,
  );
});
