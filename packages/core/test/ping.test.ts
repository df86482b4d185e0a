// The /v2/ ping and the other uncached routes: passed through byte for byte; the ping's Bearer
// realm makes later token requests recognisable; tag lists and referrers are never cached.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { type Driven, drive } from '../../../test/fakes/drive.ts';
import { type FakeRegistry, startFakeRegistry } from '../../../test/fakes/fake-registry.ts';

describe('ping and passthrough routes', () => {
  let upstream: FakeRegistry;
  let proxy: Driven;
  before(async () => {
    upstream = await startFakeRegistry();
    proxy = await drive({ target: upstream.target, manifestCache: { enabled: true } });
  });
  after(async () => {
    await proxy.close();
    await upstream.close();
  });
  beforeEach(() => {
    upstream.override = undefined;
    upstream.log.length = 0;
  });

  test('the ping goes upstream every time, answer unchanged', async () => {
    upstream.override = (req, res) => {
      if (req.url !== '/v2/') return false;
      res.writeHead(401, {
        'content-type': 'application/json',
        'www-authenticate': `Bearer realm="http://127.0.0.1:${upstream.port}/token",service="fake"`,
        'docker-distribution-api-version': 'registry/2.0',
        'x-custom': 'kept',
      });
      res.end(req.method === 'HEAD' ? undefined : '{"errors":[{"code":"UNAUTHORIZED","message":"x"}]}');
      return true;
    };
    for (let i = 0; i < 2; i++) {
      const res = await proxy.send('GET', '/v2/');
      assert.equal(res.status, 401);
      assert.equal(res.headers['x-custom'], 'kept');
      assert.equal(res.body.toString(), '{"errors":[{"code":"UNAUTHORIZED","message":"x"}]}');
      assert.equal(res.headers['x-docker-registry-proxy-cache-type'], 'ping');
      assert.equal(res.headers['x-docker-registry-proxy-cache-upstream-status'], 'BYPASS');
    }
    const head = await proxy.send('HEAD', '/v2/');
    assert.equal(head.status, 401);
    assert.equal(upstream.count({ path: '/v2/' }), 3);
  });

  test("a realm named by a challenge makes its token requests 'auth', never cached", async () => {
    upstream.override = (req, res) => {
      if (!req.url?.startsWith('/token')) return false;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ token: `t-${upstream.log.length}`, expires_in: 300 }));
      return true;
    };
    const a = await proxy.send('GET', '/token?service=fake&scope=repository:a/b:pull');
    const b = await proxy.send('GET', '/token?service=fake&scope=repository:a/b:pull');
    assert.notDeepEqual(a.body, b.body);
    assert.equal(a.headers['x-docker-registry-proxy-cache-type'], 'auth');
    assert.equal(upstream.count({ path: /^\/token/ }), 2);
    // Another path on the same host is plain passthrough.
    const other = await proxy.send('GET', '/not-a-realm');
    assert.equal(other.headers['x-docker-registry-proxy-cache-type'], 'other');
  });

  test('tag lists and referrers pass through uncached, byte for byte', async () => {
    const sha = `sha256:${'d'.repeat(64)}`;
    upstream.override = (req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', link: '<next>; rel="next"' });
      res.end(`{"path":"${req.url}","n":${upstream.log.length}}`);
      return true;
    };
    const t1 = await proxy.send('GET', '/v2/library/app/tags/list?n=10');
    const t2 = await proxy.send('GET', '/v2/library/app/tags/list?n=10');
    assert.equal(t1.body.toString(), '{"path":"/v2/library/app/tags/list?n=10","n":1}');
    assert.equal(t2.body.toString(), '{"path":"/v2/library/app/tags/list?n=10","n":2}');
    assert.equal(t1.headers.link, '<next>; rel="next"');
    assert.equal(t1.headers['x-docker-registry-proxy-cache-type'], 'tags');
    const r = await proxy.send('GET', `/v2/library/app/referrers/${sha}`);
    assert.equal(r.headers['x-docker-registry-proxy-cache-type'], 'referrers');
    assert.equal(upstream.log.length, 3);
  });

  test('invalid names never reach upstream', async () => {
    const res = await proxy.send('GET', '/v2/Bad/Name/manifests/latest');
    assert.equal(res.status, 400);
    assert.equal(res.json<{ errors: { code: string }[] }>().errors[0]?.code, 'NAME_INVALID');
    assert.equal(upstream.log.length, 0);
  });
});
