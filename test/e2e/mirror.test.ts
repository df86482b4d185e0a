// Mirror mode: clients send registry requests to drp itself, with no proxy and no CA. containerd
// through a hosts.toml mirror (cold, then warm from the cache), podman through a registries.conf
// mirror with a registry-host prefix, and curl for dockerd's registry-mirrors form (dockerd is
// not installable here). The registry is the harness's real TLS docker-registry, named
// registry.test and reached through UPSTREAM_MAPPINGS; nothing resolves that name for the
// clients, so a pull that bypassed drp would fail.
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { createHarness, type ImageInfo } from '../harness/index.ts';
import { startContainerd } from './lib/containerd.ts';
import { describe, settleLog, startDrp } from './lib/daemon.ts';
import { createPodman } from './lib/podman.ts';

const blobsOf = (image: ImageInfo) => [image.config.digest, ...image.layers.map((l) => l.digest)];
const ACCEPT = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

async function setup(t: TestContext, env: Record<string, string> = {}) {
  const h = createHarness(t);
  const ca = await h.testCA();
  const registry = await h.startRegistry({ names: ['registry.test'] });
  const named = registry.namedHostPort;
  const image = await h.createImage({ layers: [300_000, 900_000] });
  await registry.push(image, 'team/app:v1');
  await registry.counter.settle();
  registry.counter.reset();
  const drp = await startDrp(h, {
    env: {
      // registry.test on its own port (containerd's ns), and on 443 (a podman prefix has no port).
      REGISTRIES: `${named} registry.test`,
      UPSTREAM_MAPPINGS: `registry.test:443=127.0.0.1:${registry.port} registry.test=127.0.0.1`,
      UPSTREAM_CA_FILE: ca.certPath,
      ENABLE_MANIFEST_CACHE: 'true',
      CACHE_DIR: h.tempDir('cache'),
      CA_DIR: h.tempDir('ca'),
      ...env,
    },
  });
  const upstreamRequests = () => registry.counter.requests().filter((r) => r.kind !== 'ping');
  return { h, registry, named, drp, image, upstreamRequests };
}

/** curl against drp with no proxy; headers on stdout (`-D -`) even when the body goes elsewhere. */
async function curl(h: ReturnType<typeof createHarness>, url: string, args: string[] = []) {
  const out = await h.run('curl', [
    '-sS',
    '-D',
    '-',
    '--noproxy',
    '*',
    '-H',
    `Accept: ${ACCEPT}`,
    ...args,
    url,
  ]);
  const [head = '', ...body] = out.stdout.split('\r\n\r\n');
  const status = Number(/^HTTP\/[\d.]+ (\d{3})/.exec(head)?.[1] ?? 0);
  const header = (name: string) => new RegExp(`^${name}: *(.*)$`, 'im').exec(head)?.[1]?.trim() ?? undefined;
  return { status, head, header, body: body.join('\r\n\r\n') };
}

test('containerd with a hosts.toml mirror and no CA: cold through drp, then warm from its cache', async (t) => {
  const { h, named, drp, image, registry, upstreamRequests } = await setup(t);
  const containerd = await startContainerd(h);
  const hostsDir = h.tempDir('certs.d');
  await mkdir(join(hostsDir, named), { recursive: true });
  await writeFile(
    join(hostsDir, named, 'hosts.toml'),
    // The fallback server is a refused loopback port: a pull that bypassed drp fails without
    // looking up any name.
    `server = "https://127.0.0.1:9"\n\n[host."${drp.url}"]\n  capabilities = ["pull", "resolve"]\n`,
  );
  const ref = `${named}/team/app:v1`;
  const pull = () =>
    containerd.ctr(['images', 'pull', '--snapshotter', 'native', '--hosts-dir', hostsDir, ref]);

  let mark = drp.mark();
  await pull();
  assert.equal((await containerd.image(ref)).digest, image.manifestDigest);
  await registry.counter.settle();
  await settleLog(drp);
  for (const digest of blobsOf(image)) {
    assert.equal(registry.counter.count({ method: 'GET', kind: 'blob', reference: digest }), 1, digest);
  }
  const cold = drp.requests({ host: named }, mark);
  assert.deepEqual(
    drp
      .requests({ type: 'blob-by-digest', method: 'GET', host: named }, mark)
      .map((l) => l.upstream_cache_status),
    blobsOf(image).map(() => 'MISS'),
    describe(cold),
  );
  // The tag was resolved with HEAD (containerd's way), which drp answered with the digest.
  assert.ok(
    cold.some((l) => l.method === 'HEAD' && l.uri === '/v2/team/app/manifests/v1' && l.status === 200),
    describe(cold),
  );

  await containerd.removeAll();
  registry.counter.reset();
  mark = drp.mark();
  await pull();
  assert.equal((await containerd.image(ref)).digest, image.manifestDigest);
  await registry.counter.settle();
  await settleLog(drp);
  assert.deepEqual(upstreamRequests(), [], registry.counter.summary());
  const warm = drp.requests({ host: named }, mark);
  assert.ok(warm.length >= 4, describe(warm));
  assert.ok(
    warm.every((l) => l.upstream_cache_status === 'HIT'),
    describe(warm),
  );
});

test('podman with a registries.conf mirror whose location carries the registry host as a prefix', async (t) => {
  const { h, drp, image, registry } = await setup(t);
  const podman = await createPodman(h);
  const conf = join(h.tempDir('podman-conf'), 'registries.conf');
  await writeFile(
    conf,
    [
      'unqualified-search-registries = []',
      'short-name-mode = "disabled"',
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
  await podman.pull('registry.test/team/app:v1', {
    env: { CONTAINERS_REGISTRIES_CONF: conf, REGISTRIES_CONFIG_PATH: conf },
  });
  const pulled = await podman.inspect('registry.test/team/app:v1');
  assert.equal(`sha256:${pulled.id}`, image.config.digest);
  await registry.counter.settle();
  await settleLog(drp);
  // Served by drp for registry.test:443, which UPSTREAM_MAPPINGS sends to the registry's port.
  const lines = drp.requests({ host: 'registry.test' }, mark);
  assert.deepEqual(
    lines
      .filter((l) => l.request_type === 'blob-by-digest')
      .map((l) => l.upstream_cache_status)
      .sort(),
    blobsOf(image).map(() => 'MISS'),
    describe(lines),
  );
  assert.ok(
    lines.every((l) => l.uri.startsWith('/v2/team/app/')),
    describe(lines),
  );
  // podman pinged the mirror root, which drp answered itself.
  assert.ok(
    drp.requests({ type: 'ping' }, mark).some((l) => l.host === '-' && l.status === 200),
    describe(drp.lines.slice(mark)),
  );
});

test("dockerd's registry-mirrors form (curl): root ping, default registry, ns, refusals, fail fast", async (t) => {
  const { h, named, drp, image, registry } = await setup(t, {
    MIRROR_DEFAULT_REGISTRY: 'registry.test',
  });
  const ping = await curl(h, `${drp.url}/v2/`);
  assert.equal(ping.status, 200);
  assert.equal(ping.header('docker-distribution-api-version'), 'registry/2.0');
  assert.equal(registry.counter.count({ kind: 'ping' }), 0, 'the root ping is answered by drp');

  // No ns, no prefix: MIRROR_DEFAULT_REGISTRY (registry.test:443 -> the registry).
  const manifest = await curl(h, `${drp.url}/v2/team/app/manifests/v1`);
  assert.equal(manifest.status, 200, manifest.head);
  assert.equal(manifest.header('docker-content-digest'), image.manifestDigest);
  const blob = await curl(h, `${drp.url}/v2/team/app/blobs/${image.config.digest}`, ['-o', '/dev/null']);
  assert.equal(blob.status, 200, blob.head);

  // containerd's form: a HEAD of the tag with ns answers the digest; ns wins over a prefix.
  const head = await curl(h, `${drp.url}/v2/team/app/manifests/v1?ns=${named}`, ['-I']);
  assert.equal(head.status, 200, head.head);
  assert.equal(head.header('docker-content-digest'), image.manifestDigest);
  const both = await curl(h, `${drp.url}/v2/registry.test/team/app/manifests/v1?ns=${named}`, ['-I']);
  assert.equal(both.status, 200, both.head);
  const other = await curl(h, `${drp.url}/v2/registry.test/team/app/manifests/v1?ns=not-mirrored.test`);
  assert.equal(other.status, 404, 'ns names the registry, not the prefix');

  // A registry drp does not intercept: 404 with an OCI body naming it; nothing is contacted.
  for (const url of [
    `${drp.url}/v2/team/app/manifests/v1?ns=not-mirrored.test:5000`,
    `${drp.url}/v2/not-mirrored.test/team/app/manifests/v1`,
  ]) {
    const refused = await curl(h, url);
    assert.equal(refused.status, 404, refused.head);
    const body = JSON.parse(refused.body) as { errors: { code: string; message: string }[] };
    assert.equal(body.errors[0]?.code, 'NAME_UNKNOWN');
    assert.match(body.errors[0]?.message ?? '', /not-mirrored\.test/);
  }

  // Upstream down: what is cached is still served, what is not fails at once with an OCI body.
  await registry.close();
  const started = Date.now();
  const missing = await curl(h, `${drp.url}/v2/team/app/blobs/sha256:${'0'.repeat(64)}?ns=${named}`);
  assert.equal(missing.status, 502, missing.head);
  assert.ok(Date.now() - started < 5000, 'answered at once');
  assert.match(JSON.parse(missing.body).errors[0].code, /UNKNOWN/);
  const cached = await curl(h, `${drp.url}/v2/team/app/blobs/${image.config.digest}?ns=${named}`, [
    '-o',
    '/dev/null',
  ]);
  assert.equal(cached.status, 200, cached.head);
  const tag = await curl(h, `${drp.url}/v2/team/app/manifests/v1?ns=${named}`);
  assert.equal(tag.status, 200, 'the tag manifest from the cache');
  assert.equal(tag.header('docker-content-digest'), image.manifestDigest);
});

test('MIRROR_TLS_PORT: the same mirror over TLS with a leaf from drp CA', async (t) => {
  const { h, named, drp, image } = await setup(t, { MIRROR_TLS_PORT: '0' });
  const port = Number(drp.startup.mirror_tls_port);
  assert.ok(port > 0, JSON.stringify(drp.startup));
  for (const host of ['127.0.0.1', 'localhost']) {
    const out = await curl(h, `https://${host}:${port}/v2/team/app/manifests/v1?ns=${named}`, [
      '--cacert',
      drp.caFile,
    ]);
    assert.equal(out.status, 200, out.head);
    assert.equal(out.header('docker-content-digest'), image.manifestDigest);
  }
  // A mirror, not a proxy: an absolute-form request on the TLS port is not forwarded.
  const proxied = await h.run('curl', [
    '-sS',
    '-o',
    '/dev/null',
    '-w',
    '%{http_code}',
    '--proxy',
    `https://127.0.0.1:${port}`,
    '--proxy-cacert',
    drp.caFile,
    `http://127.0.0.1:${drp.port}/healthz`,
  ]);
  assert.equal(proxied.stdout, '400');
});

test('a registry with Basic auth: its 401 reaches a mirror client unchanged; AUTH_REGISTRIES is injected as for intercepted traffic', async (t) => {
  const h = createHarness(t);
  const ca = await h.testCA();
  const registry = await h.startRegistry({
    names: ['registry.test'],
    auth: { username: 'svc', password: 'pw-1' },
  });
  const image = await h.createImage({ layers: [100_000] });
  await registry.push(image, 'private/app:v1');
  const env = {
    REGISTRIES: registry.namedHostPort,
    UPSTREAM_MAPPINGS: 'registry.test=127.0.0.1',
    UPSTREAM_CA_FILE: ca.certPath,
  };
  const url = (drp: { url: string }) => `${drp.url}/v2/private/app/manifests/v1?ns=${registry.namedHostPort}`;
  const plain = await startDrp(h, {
    env: { ...env, CACHE_DIR: h.tempDir('cache'), CA_DIR: h.tempDir('ca') },
  });
  const denied = await curl(h, url(plain));
  assert.equal(denied.status, 401, denied.head);
  assert.match(denied.header('www-authenticate') ?? '', /^Basic realm=/);
  const own = await curl(h, url(plain), ['-u', 'svc:pw-1']);
  assert.equal(own.status, 200, own.head);

  const injecting = await startDrp(h, {
    env: {
      ...env,
      AUTH_REGISTRIES: 'registry.test:svc:pw-1',
      CACHE_DIR: h.tempDir('cache'),
      CA_DIR: h.tempDir('ca'),
    },
  });
  const served = await curl(h, url(injecting));
  assert.equal(served.status, 200, served.head);
  assert.equal(served.header('docker-content-digest'), image.manifestDigest);
  assert.ok(!injecting.output().includes('pw-1'));
});
