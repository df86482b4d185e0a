// Push: refused with 405 UNSUPPORTED by default; with allowPush, streamed to upstream with the
// body, Content-Length and Location untouched, and a manifest PUT by tag drops the cached tag.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { type Driven, drive } from '../../../test/fakes/drive.ts';
import {
  type FakeRegistry,
  manifestBody,
  OCI_MANIFEST,
  startFakeRegistry,
} from '../../../test/fakes/fake-registry.ts';

const SHA = `sha256:${'c'.repeat(64)}`;

describe('push disabled (the default)', () => {
  let upstream: FakeRegistry;
  let proxy: Driven;
  before(async () => {
    upstream = await startFakeRegistry();
    proxy = await drive({ target: upstream.target });
  });
  after(async () => {
    await proxy.close();
    await upstream.close();
  });

  for (const [method, path] of [
    ['POST', '/v2/team/app/blobs/uploads/'],
    ['PATCH', '/v2/team/app/blobs/uploads/abc'],
    ['PUT', `/v2/team/app/blobs/uploads/abc?digest=${SHA}`],
    ['PUT', '/v2/team/app/manifests/latest'],
    ['DELETE', `/v2/team/app/manifests/${SHA}`],
    ['DELETE', `/v2/team/app/blobs/${SHA}`],
  ] as const) {
    test(`${method} ${path} is answered 405 UNSUPPORTED without asking upstream`, async () => {
      const res = await proxy.send(method, path, { 'content-type': 'application/octet-stream' }, 'data');
      assert.equal(res.status, 405);
      assert.equal(res.json<{ errors: { code: string }[] }>().errors[0]?.code, 'UNSUPPORTED');
      assert.equal(upstream.log.length, 0);
    });
  }
});

describe('push allowed', () => {
  let upstream: FakeRegistry;
  let proxy: Driven;
  before(async () => {
    upstream = await startFakeRegistry();
    proxy = await drive({ target: upstream.target, allowPush: true, manifestCache: { enabled: true } });
  });
  after(async () => {
    await proxy.close();
    await upstream.close();
  });

  test('upload requests reach upstream with their bodies and Location comes back untouched', async () => {
    upstream.override = (req, res) => {
      if (req.method === 'POST') {
        res.writeHead(202, {
          location: '/v2/team/app/blobs/uploads/u-1?_state=xyz',
          'docker-upload-uuid': 'u-1',
        });
        res.end();
        return true;
      }
      if (req.method === 'PATCH' || req.method === 'PUT') {
        res.writeHead(req.method === 'PUT' ? 201 : 202, {
          location: 'https://elsewhere.example/v2/x',
          range: '0-3',
        });
        res.end();
        return true;
      }
      return false;
    };
    const start = await proxy.send('POST', '/v2/team/app/blobs/uploads/', { 'content-length': '0' });
    assert.equal(start.status, 202);
    assert.equal(start.headers.location, '/v2/team/app/blobs/uploads/u-1?_state=xyz');
    assert.equal(start.headers['x-docker-registry-proxy-cache-type'], 'upload');
    const patch = await proxy.send(
      'PATCH',
      '/v2/team/app/blobs/uploads/u-1?_state=xyz',
      {
        'content-type': 'application/octet-stream',
        'content-length': '4',
      },
      'abcd',
    );
    assert.equal(patch.status, 202);
    assert.equal(patch.headers.location, 'https://elsewhere.example/v2/x');
    const put = await proxy.send('PUT', `/v2/team/app/blobs/uploads/u-1?_state=xyz&digest=${SHA}`, {
      'content-length': '0',
    });
    assert.equal(put.status, 201);
    const patchLog = upstream.log.find((r) => r.method === 'PATCH');
    assert.equal(patchLog?.bodyBytes, 4);
    assert.equal(patchLog?.headers['content-length'], '4');
    assert.equal(patchLog?.path, '/v2/team/app/blobs/uploads/u-1?_state=xyz');
    upstream.override = undefined;
  });

  test('a big chunked upload streams through and Expect: 100-continue works', async () => {
    upstream.override = (req, res) => {
      if (req.method !== 'PATCH') return false;
      res.writeHead(202, { location: '/v2/team/app/blobs/uploads/u-2' });
      res.end();
      return true;
    };
    const size = 64 * 1024 * 1024;
    const chunk = Buffer.alloc(1024 * 1024, 7);
    let sent = 0;
    const body = new Readable({
      read() {
        if (sent >= size) this.push(null);
        else {
          sent += chunk.length;
          this.push(chunk);
        }
      },
    });
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: proxy.port,
          method: 'PATCH',
          path: '/v2/team/app/blobs/uploads/u-2',
          headers: { 'content-type': 'application/octet-stream', expect: '100-continue' },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.on('continue', () => body.pipe(req));
    });
    assert.equal(status, 202);
    const logged = upstream.log.find((r) => r.path === '/v2/team/app/blobs/uploads/u-2');
    assert.equal(logged?.bodyBytes, size);
    assert.equal(logged?.headers.expect, undefined);
    upstream.override = undefined;
  });

  test('a manifest PUT by tag drops the cached tag', async () => {
    upstream.setManifest('team/app', 'latest', manifestBody(OCI_MANIFEST, 'old'));
    await proxy.send('GET', '/v2/team/app/manifests/latest', { accept: OCI_MANIFEST });
    const hit = await proxy.send('GET', '/v2/team/app/manifests/latest', { accept: OCI_MANIFEST });
    assert.equal(hit.headers['x-docker-registry-proxy-cache-upstream-status'], 'HIT');

    const next = manifestBody(OCI_MANIFEST, 'new');
    upstream.override = (req, res) => {
      if (req.method !== 'PUT') return false;
      const digest = upstream.setManifest('team/app', 'latest', next);
      res.writeHead(201, { location: `/v2/team/app/manifests/${digest}`, 'docker-content-digest': digest });
      res.end();
      return true;
    };
    const put = await proxy.send(
      'PUT',
      '/v2/team/app/manifests/latest',
      { 'content-type': OCI_MANIFEST },
      JSON.stringify(next),
    );
    assert.equal(put.status, 201);
    upstream.override = undefined;
    const after = await proxy.send('GET', '/v2/team/app/manifests/latest', { accept: OCI_MANIFEST });
    assert.equal(after.headers['x-docker-registry-proxy-cache-upstream-status'], 'MISS');
    assert.equal(after.headers['docker-content-digest'], put.headers['docker-content-digest']);
  });

  test('blob HEADs ask upstream: a pusher must learn what this repository has, not what the cache has', async () => {
    const before = upstream.log.length;
    const res = await proxy.send('HEAD', `/v2/team/app/blobs/${SHA}`);
    assert.equal(res.status, 404);
    assert.equal(upstream.log.length, before + 1);
    assert.equal(upstream.log.at(-1)?.method, 'HEAD');
  });

  test('writes outside the registry API pass through (e.g. an OAuth2 token POST)', async () => {
    const res = await proxy.send(
      'POST',
      '/token',
      { 'content-type': 'application/x-www-form-urlencoded' },
      'grant_type=x',
    );
    assert.equal(res.status, 404);
    assert.equal(upstream.log.at(-1)?.bodyBytes, 'grant_type=x'.length);
  });
});
