// The security review's findings about the auth boundary and content, replayed end to end
// through drp-server against a real registry (distribution over TLS) that requires credentials:
//  1. encoded spellings of /v2/ (and OPTIONS/DELETE) cannot get around the method policy, and
//     the central AUTH_REGISTRIES account is never added to a write;
//  2. a digest is served only as the kind it was stored as, and private content is checked;
//  5. OPTIONS never reaches upstream, a manifest DELETE (push on) is really sent;
//  9. the cache and CA directories are private (0600 files, 0700 directories).
import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { startDrp } from '../e2e/lib/daemon.ts';
import { startTokenRegistry } from '../fakes/token-registry.ts';
import { startTokenServer } from '../fakes/token-server.ts';
import { createHarness, pushImage, RunError } from '../harness/index.ts';
import { rawRequest, readResponses, tlsVia } from './raw-client.ts';

const OWNER = { username: 'owner', password: 'owner-S3CRET-pw' };

async function privateSetup(t: Parameters<typeof createHarness>[0], env: Record<string, string> = {}) {
  const h = createHarness(t);
  const ca = await h.testCA();
  const registry = await h.startRegistry({ names: ['registry.test'], auth: OWNER });
  const image = await h.createImage({ layers: [300_000, 200_000] });
  await registry.push(image, 'private/app:v1');
  await registry.counter.settle();
  registry.counter.reset();
  const named = registry.namedHostPort;
  const cacheDir = h.tempDir('cache');
  const caDir = h.tempDir('ca');
  const drp = await startDrp(h, {
    env: {
      REGISTRIES: named,
      UPSTREAM_MAPPINGS: 'registry.test=127.0.0.1',
      UPSTREAM_CA_FILE: ca.certPath,
      CACHE_DIR: cacheDir,
      CA_DIR: caDir,
      AUTH_REGISTRY_DELIMITER: '|',
      AUTH_REGISTRIES: `${named}|${OWNER.username}|${OWNER.password}`,
      ...env,
    },
  });
  return { h, registry, image, named, drp, cacheDir, caDir };
}

test('encoded /v2/ spellings are routed as /v2/: no write reaches upstream, none with the central account', async (t) => {
  const { registry, named, drp } = await privateSetup(t);
  // By method: the registry's log classifies an encoded path as "other", never as an upload.
  const writes = () => registry.counter.requests().filter((r) => r.method !== 'GET' && r.method !== 'HEAD');
  for (const target of ['/%762/private/app/blobs/uploads/', '/v%32/private/app/blobs/uploads/']) {
    const answer = await rawRequest(drp.port, named, drp.caPem, 'POST', target);
    assert.equal(answer.status, 405, `${target}: ${answer.body.toString()}`);
    assert.equal(JSON.parse(answer.body.toString()).errors[0].code, 'UNSUPPORTED');
  }
  for (const target of [
    '/v2%2fprivate/app/blobs/uploads/',
    '/v2/private/%2e%2e/app/blobs/uploads/',
    '/v2//private/app/blobs/uploads/',
  ]) {
    const answer = await rawRequest(drp.port, named, drp.caPem, 'POST', target);
    assert.equal(answer.status, 400, target);
  }
  // The same with a tag overwrite attempt: a manifest PUT by any spelling.
  const put = await rawRequest(
    drp.port,
    named,
    drp.caPem,
    'PUT',
    '/%762/private/app/manifests/v1',
    {
      'content-type': 'application/vnd.oci.image.manifest.v1+json',
    },
    '{}',
  );
  assert.equal(put.status, 405);
  await registry.counter.settle();
  assert.deepEqual(writes(), [], registry.counter.summary());
});

test('with ALLOW_PUSH=true a client without credentials cannot push with the central account', async (t) => {
  const { h, registry, named, drp } = await privateSetup(t, { ALLOW_PUSH: 'true' });
  const other = await h.createImage({ layers: [100_000] });
  // skopeo with no credentials: drp must not lend it the AUTH_REGISTRIES account.
  await assert.rejects(
    pushImage(other, named, 'private/app:v1', {
      creds: null,
      certDir: drp.certDir,
      env: { HTTPS_PROXY: drp.url, https_proxy: drp.url, NO_PROXY: '', no_proxy: '' },
    }),
    (error: unknown) =>
      error instanceof RunError && /unauthorized|authentication required|401/i.test(error.result.stderr),
  );
  // An anonymous upload start gets upstream's own 401, not a 202 on the central account.
  const start = await rawRequest(drp.port, named, drp.caPem, 'POST', '/v2/private/app/blobs/uploads/');
  assert.equal(start.status, 401);
  // The tag still points at the owner's image.
  const pulled = await h.pullImage(named, 'private/app:v1', {
    proxy: drp.url,
    certDir: drp.certDir,
    creds: null,
  });
  assert.notEqual(pulled.manifestDigest, other.manifestDigest);
  await registry.counter.settle();
  const accepted = registry.counter
    .requests()
    .filter((r) => r.method !== 'GET' && r.method !== 'HEAD' && r.status < 300);
  assert.deepEqual(accepted, [], registry.counter.summary());
});

test('a digest is served only as what it was stored as, and private content only after a check', async (t) => {
  // No central account: what the owner pulls with its own credentials is private.
  const { h, image, named, drp } = await privateSetup(t, { AUTH_REGISTRIES: '' });
  const owner = `${OWNER.username}:${OWNER.password}`;
  await h.pullImage(named, 'private/app:v1', { proxy: drp.url, certDir: drp.certDir, creds: owner });
  const layer = image.layers[0]!.digest;
  const anonymous = {};
  const basic = { authorization: `Basic ${Buffer.from(owner).toString('base64')}` };

  // A layer asked for as a manifest, through any repository name: never the stored bytes.
  for (const name of ['private/app', 'some/other']) {
    for (const headers of [anonymous, basic]) {
      const answer = await rawRequest(
        drp.port,
        named,
        drp.caPem,
        'GET',
        `/v2/${name}/manifests/${layer}`,
        headers,
      );
      assert.notEqual(answer.status, 200, `${name} ${JSON.stringify(headers)}`);
      assert.notEqual(answer.body.length, image.layers[0]!.size);
    }
  }
  // A private manifest asked for as a blob by a client without credentials: upstream's 401.
  const asBlob = await rawRequest(
    drp.port,
    named,
    drp.caPem,
    'GET',
    `/v2/private/app/blobs/${image.manifestDigest}`,
  );
  assert.equal(asBlob.status, 401);
  assert.ok(!asBlob.body.toString().includes('"layers"'));
  // The private layer and manifest by digest, anonymously: upstream's check says no.
  const blob = await rawRequest(drp.port, named, drp.caPem, 'GET', `/v2/private/app/blobs/${layer}`);
  assert.equal(blob.status, 401);
  const manifest = await rawRequest(
    drp.port,
    named,
    drp.caPem,
    'GET',
    `/v2/private/app/manifests/${image.manifestDigest}`,
  );
  assert.equal(manifest.status, 401);
  // The owner still gets both from the cache.
  const ownBlob = await rawRequest(
    drp.port,
    named,
    drp.caPem,
    'GET',
    `/v2/private/app/blobs/${layer}`,
    basic,
  );
  assert.equal(ownBlob.status, 200);
  assert.equal(ownBlob.body.length, image.layers[0]!.size);
});

test('OPTIONS never reaches upstream (200 pipelined are refused at once); a manifest DELETE is really sent', async (t) => {
  const { registry, named, drp } = await privateSetup(t, { ALLOW_PUSH: 'true' });
  const socket = await tlsVia(drp.port, named, drp.caPem);
  const one = `OPTIONS /v2/private/app/manifests/v1 HTTP/1.1\r\nhost: ${named}\r\n\r\n`;
  socket.write(one.repeat(199) + one.replace('\r\n\r\n', '\r\nconnection: close\r\n\r\n'));
  const answers = await readResponses(socket, 200);
  socket.destroy();
  assert.equal(answers.length, 200);
  assert.ok(answers.every((a) => a.status === 405));
  const del = await rawRequest(drp.port, named, drp.caPem, 'DELETE', '/v2/private/app/manifests/v1', {
    authorization: `Basic ${Buffer.from(`${OWNER.username}:${OWNER.password}`).toString('base64')}`,
  });
  // distribution refuses deletes unless enabled: its own answer, sent at once, not a hang.
  assert.ok([202, 400, 405].includes(del.status), `DELETE answered ${del.status}`);
  await registry.counter.settle();
  const methods = registry.counter.requests({}).map((r) => r.method);
  assert.ok(!methods.includes('OPTIONS'), methods.join(' '));
  assert.ok(methods.includes('DELETE'), methods.join(' '));
});

async function walk(dir: string, out: { path: string; mode: number; dir: boolean }[] = []) {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    const info = await stat(path);
    out.push({ path, mode: info.mode & 0o777, dir: entry.isDirectory() });
    if (entry.isDirectory()) await walk(path, out);
  }
  return out;
}

test('every file drp writes is 0600 and every directory 0700', async (t) => {
  const { h, named, drp, cacheDir, caDir } = await privateSetup(t, {
    ENABLE_MANIFEST_CACHE: 'true',
  });
  await h.pullImage(named, 'private/app:v1', { proxy: drp.url, certDir: drp.certDir, creds: null });
  await drp.stop();
  const written = [...(await walk(cacheDir)), ...(await walk(caDir))];
  assert.ok(
    written.some((w) => w.path.includes('drp-tags') && !w.dir),
    'the tag index was written',
  );
  assert.ok(
    written.some((w) => w.path.includes('content-v2') && !w.dir),
    'blobs were written',
  );
  const open = written.filter((w) => (w.dir ? w.mode !== 0o700 : (w.mode & 0o077) !== 0));
  // ca.crt is public by design (it is served at /ca.crt); everything else is private.
  const unexpected = open.filter((w) => !/\/ca\.crt$/.test(w.path));
  assert.deepEqual(
    unexpected.map((w) => `${w.mode.toString(8)} ${w.path}`),
    [],
  );
  for (const dir of [cacheDir, caDir]) assert.equal((await stat(dir)).mode & 0o777, 0o700, dir);
});

test('the central account is sent on pull-only token requests, never on push, delete or * scopes', async (t) => {
  const h = createHarness(t);
  const ca = await h.testCA();
  const tokens = await startTokenServer(h, {
    service: 'registry.test',
    issuer: 'drp-test-issuer',
    users: { robot: 'robot-S3CRET' },
    names: ['auth.test'],
  });
  const registry = await startTokenRegistry(h, tokens);
  const named = registry.namedHostPort;
  const realm = new URL(tokens.realm);
  const authHost = `auth.test:${realm.port}`;
  const drp = await startDrp(h, {
    env: {
      REGISTRIES: `${named} ${authHost}`,
      UPSTREAM_MAPPINGS: 'registry.test=127.0.0.1 auth.test=127.0.0.1',
      UPSTREAM_CA_FILE: ca.certPath,
      CACHE_DIR: h.tempDir('cache'),
      CA_DIR: h.tempDir('ca'),
      AUTH_REGISTRY_DELIMITER: '|',
      AUTH_REGISTRIES: `${authHost}|robot|robot-S3CRET`,
    },
  });
  // The ping's challenge names the realm.
  const ping = await rawRequest(drp.port, named, drp.caPem, 'GET', '/v2/');
  assert.equal(ping.status, 401);
  const ask = async (scope: string) => {
    tokens.requests.length = 0;
    const query = `service=registry.test&scope=${encodeURIComponent(scope)}`;
    await rawRequest(drp.port, authHost, drp.caPem, 'GET', `${realm.pathname}?${query}`);
    assert.equal(tokens.requests.length, 1, scope);
    return tokens.requests[0]?.user;
  };
  assert.equal(await ask('repository:private/app:pull'), 'robot');
  for (const scope of [
    'repository:private/app:pull,push',
    'repository:private/app:push',
    'repository:private/app:delete',
    'repository:private/app:*',
    'registry:catalog:*',
    'repository:private/app:pull repository:other/app:push',
  ]) {
    assert.equal(await ask(scope), undefined, `${scope} got the central account`);
  }
});
