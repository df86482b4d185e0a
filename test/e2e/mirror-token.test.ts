// Mirror mode against a registry with token auth (distribution's auth.token and a token server
// speaking Docker Hub's protocol, realm on loopback). podman and dockerd ping the mirror root,
// which drp answers 200 with no challenge, so they would never learn the realm: for a client
// that sends no credentials drp fetches the token itself (anonymous, or with AUTH_REGISTRIES
// for the realm's host). When it gets none, the registry's 401 goes to the client unchanged and
// a client with credentials fetches its own token from the realm.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { startTokenRegistry } from '../fakes/token-registry.ts';
import { startTokenServer } from '../fakes/token-server.ts';
import { createHarness } from '../harness/index.ts';
import { describe, settleLog, startDrp } from './lib/daemon.ts';
import { createPodman } from './lib/podman.ts';

const ACCEPT = 'application/vnd.oci.image.manifest.v1+json';

async function setup(t: TestContext, env: Record<string, string> = {}) {
  const h = createHarness(t);
  const ca = await h.testCA();
  const tokens = await startTokenServer(h, {
    service: 'registry.test',
    issuer: 'drp-test-issuer',
    users: { robot: 's3cret' },
    publicRepos: ['public/app'],
  });
  const registry = await startTokenRegistry(h, tokens);
  const image = await h.createImage({ layers: [150_000, 250_000] });
  await registry.push(image, 'public/app:v1', { creds: 'robot:s3cret' });
  await registry.push(image, 'private/app:v1', { creds: 'robot:s3cret' });
  tokens.requests.length = 0;
  const drp = await startDrp(h, {
    env: {
      // The realm is configured like auth.docker.io is for Docker Hub (a loopback address is a
      // blocked destination unless configured).
      REGISTRIES: `registry.test 127.0.0.1:${tokens.port}`,
      // A podman mirror prefix carries no port: registry.test is port 443, mapped to the registry.
      UPSTREAM_MAPPINGS: `registry.test:443=127.0.0.1:${registry.port}`,
      UPSTREAM_CA_FILE: ca.certPath,
      MIRROR_DEFAULT_REGISTRY: 'registry.test',
      CACHE_DIR: h.tempDir('cache'),
      CA_DIR: h.tempDir('ca'),
      ...env,
    },
  });
  return { h, ca, tokens, registry, image, drp };
}

async function curl(h: ReturnType<typeof createHarness>, url: string, args: string[] = []) {
  const out = await h.run('curl', ['-sS', '-D', '-', '-o', '/dev/null', '--noproxy', '*', ...args, url]);
  const status = Number(/^HTTP\/[\d.]+ (\d{3})/.exec(out.stdout)?.[1] ?? 0);
  const header = (name: string) => new RegExp(`^${name}: *(.*)$`, 'im').exec(out.stdout)?.[1]?.trim();
  return { status, header, head: out.stdout };
}

test('podman through a mirror prefix, anonymous: drp fetches the token podman never saw a challenge for', async (t) => {
  const { h, tokens, image, drp } = await setup(t);
  const podman = await createPodman(h);
  const conf = join(h.tempDir('podman-conf'), 'registries.conf');
  await writeFile(
    conf,
    [
      'unqualified-search-registries = []',
      '[[registry]]',
      'prefix = "registry.test"',
      // Were the mirror to fail, podman would try this refused loopback port, never a DNS name.
      'location = "127.0.0.1:9"',
      '[[registry.mirror]]',
      `location = "127.0.0.1:${drp.port}/registry.test"`,
      'insecure = true',
      '',
    ].join('\n'),
  );
  const mark = drp.mark();
  await podman.pull('registry.test/public/app:v1', { env: { CONTAINERS_REGISTRIES_CONF: conf } });
  assert.equal(`sha256:${(await podman.inspect('registry.test/public/app:v1')).id}`, image.config.digest);
  await settleLog(drp);
  const lines = drp.requests({ host: 'registry.test' }, mark);
  assert.ok(
    lines.every((l) => l.status === 200),
    describe(lines),
  );
  // One anonymous token, reused for the manifest and every blob.
  assert.deepEqual(
    tokens.requests.map((r) => [r.user, r.scope]),
    [[undefined, 'repository:public/app:pull']],
  );
});

test('AUTH_REGISTRIES for the realm host: a private repository through the dockerd form with no credentials', async (t) => {
  const { h, tokens, image, drp } = await setup(t, { AUTH_REGISTRIES: '127.0.0.1:robot:s3cret' });
  const manifest = await curl(h, `${drp.url}/v2/private/app/manifests/v1`, ['-H', `Accept: ${ACCEPT}`]);
  assert.equal(manifest.status, 200, manifest.head);
  assert.equal(manifest.header('docker-content-digest'), image.manifestDigest);
  assert.deepEqual(
    tokens.requests.map((r) => [r.user, r.scope]),
    [['robot', 'repository:private/app:pull']],
  );
});

test('no token for drp: the 401 challenge is relayed unchanged; a client with its own token is served', async (t) => {
  const { h, ca, tokens, image, drp } = await setup(t);
  const url = `${drp.url}/v2/private/app/manifests/v1`;
  const denied = await curl(h, url, ['-H', `Accept: ${ACCEPT}`]);
  assert.equal(denied.status, 401, denied.head);
  const challenge = denied.header('www-authenticate') ?? '';
  assert.match(
    challenge,
    new RegExp(`^Bearer realm="${tokens.realm}",service="registry.test",scope="repository:private/app:pull"`),
  );
  // What a client does with the challenge: its own token from the realm, then the request again.
  const got = await h.run('curl', [
    '-sS',
    '--noproxy',
    '*',
    '--cacert',
    ca.certPath,
    '-u',
    'robot:s3cret',
    `${tokens.realm}?service=registry.test&scope=repository:private/app:pull`,
  ]);
  const token = (JSON.parse(got.stdout) as { token: string }).token;
  const served = await curl(h, url, ['-H', `Accept: ${ACCEPT}`, '-H', `Authorization: Bearer ${token}`]);
  assert.equal(served.status, 200, served.head);
  assert.equal(served.header('docker-content-digest'), image.manifestDigest);
});
