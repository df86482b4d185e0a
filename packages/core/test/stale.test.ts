// Stale on error: 429, 5xx, timeouts and unreachable upstreams get the last known manifest (and
// ping answer), marked stale, with the cache on or off and across a restart; with nothing
// known the upstream's error goes through unchanged.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { type Driven, drive } from '../../../test/fakes/drive.ts';
import {
  type FakeRegistry,
  manifestBody,
  OCI_MANIFEST,
  startFakeRegistry,
} from '../../../test/fakes/fake-registry.ts';

const ACCEPT = { accept: OCI_MANIFEST };
const HOUR = 3_600_000;

function tooMany(req: { method?: string; url?: string }, res: import('node:http').ServerResponse): boolean {
  const body = '{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit."}]}';
  res.writeHead(429, {
    'content-type': 'application/json',
    'retry-after': '3600',
    'content-length': Buffer.byteLength(body),
  });
  res.end(req.method === 'HEAD' ? undefined : body);
  return true;
}

for (const enabled of [true, false]) {
  describe(`stale on error, manifest cache ${enabled ? 'on' : 'off'}`, () => {
    let upstream: FakeRegistry;
    let proxy: Driven;
    let now = 5_000_000;

    before(async () => {
      upstream = await startFakeRegistry();
      proxy = await drive({
        target: upstream.target,
        manifestCache: { enabled },
        now: () => now,
        upstream: { responseTimeout: '300ms' },
      });
    });
    after(async () => {
      await proxy.close();
      await upstream.close();
    });
    beforeEach(() => {
      upstream.override = undefined;
      proxy.stale.length = 0;
    });

    for (const [label, override] of [
      ['429 TOOMANYREQUESTS', tooMany],
      [
        '503',
        (_req: unknown, res: import('node:http').ServerResponse) => {
          res.writeHead(503).end('down');
          return true;
        },
      ],
      [
        'a reset connection',
        (_req: unknown, res: import('node:http').ServerResponse) => {
          res.socket?.destroy();
          return true;
        },
      ],
      ['a timeout', () => new Promise<boolean>(() => undefined)],
    ] as const) {
      test(`${label}: the last known manifest is served, marked stale`, async () => {
        const repo = `library/stale-${label.replace(/\W/g, '').toLowerCase()}`;
        const digest = upstream.setManifest(repo, 'latest', manifestBody(OCI_MANIFEST, repo));
        const fresh = await proxy.send('GET', `/v2/${repo}/manifests/latest`, ACCEPT);
        assert.equal(fresh.status, 200);
        now += 2 * HOUR;
        upstream.override = override as FakeRegistry['override'];
        for (const method of ['GET', 'HEAD']) {
          const res = await proxy.send(method, `/v2/${repo}/manifests/latest`, ACCEPT);
          assert.equal(res.status, 200, `${method}: ${res.body}`);
          assert.equal(res.headers['docker-content-digest'], digest);
          assert.equal(res.headers['x-drp-stale'], '1');
          assert.equal(res.headers.warning, '110 - "Response is Stale"');
          assert.equal(res.headers['x-docker-registry-proxy-cache-upstream-status'], 'STALE');
          if (method === 'GET') assert.deepEqual(res.body, fresh.body);
        }
        assert.equal(proxy.stale.length, 2);
        assert.equal(proxy.stale[0]?.reference, 'latest');
      });
    }

    test('with nothing cached, a 429 goes through unchanged', async () => {
      upstream.override = tooMany;
      const res = await proxy.send('GET', '/v2/library/never/manifests/latest', ACCEPT);
      assert.equal(res.status, 429);
      assert.equal(res.headers['retry-after'], '3600');
      assert.equal(res.json<{ errors: { code: string }[] }>().errors[0]?.code, 'TOOMANYREQUESTS');
      assert.equal(res.headers['x-drp-stale'], undefined);
    });

    test('with nothing cached, an unreachable upstream is a 502 with an OCI body', async () => {
      upstream.override = (_req, res) => {
        res.socket?.destroy();
        return true;
      };
      const res = await proxy.send('GET', '/v2/library/never2/manifests/latest', ACCEPT);
      assert.ok(res.status === 502 || res.status === 504, String(res.status));
      assert.ok(res.json<{ errors: { code: string }[] }>().errors[0]?.code);
    });
  });
}

describe('stale after a restart, and the ping', () => {
  test('the tag index and the ping answer survive a restart', async () => {
    const upstream = await startFakeRegistry();
    upstream.basicAuth = { username: 'u', password: 'p' };
    const cacheDir = mkdtempSync(join(tmpdir(), 'drp-stale-restart-'));
    const creds = [{ host: '127.0.0.1', username: 'u', password: 'p' }];
    try {
      const digest = upstream.setManifest('team/app', 'v1', manifestBody(OCI_MANIFEST, 'restart'));
      const first = await drive({ target: upstream.target, cacheDir });
      // The ping is remembered per registry and per "credentials or not": ask both ways.
      upstream.basicAuth = { username: 'u', password: 'p' };
      const ping = await first.send('GET', '/v2/');
      assert.equal(ping.status, 401);
      assert.match(String(ping.headers['www-authenticate']), /Basic/);
      const auth = `Basic ${Buffer.from('u:p').toString('base64')}`;
      assert.equal(
        (await first.send('GET', '/v2/team/app/manifests/v1', { ...ACCEPT, authorization: auth })).status,
        200,
      );
      await first.close();

      const second = await drive({ target: upstream.target, cacheDir, credentials: creds });
      upstream.override = tooMany;
      // Nothing known for "injected credentials": the upstream's 429 goes through.
      const injected = await second.send('GET', '/v2/team/app/manifests/v1', ACCEPT);
      assert.equal(injected.status, 429);
      await second.close();

      const third = await drive({ target: upstream.target, cacheDir });
      upstream.override = (_req, res) => {
        res.writeHead(502).end('bad gateway');
        return true;
      };
      const stalePing = await third.send('GET', '/v2/');
      assert.equal(stalePing.status, 401);
      assert.equal(stalePing.headers['x-drp-stale'], '1');
      assert.match(String(stalePing.headers['www-authenticate']), /Basic realm="fake"/);
      assert.equal(third.outcomes.at(-1)?.cacheStatus, 'STALE');
      const staleManifest = await third.send('GET', '/v2/team/app/manifests/v1', {
        ...ACCEPT,
        authorization: auth,
      });
      assert.equal(staleManifest.status, 200);
      assert.equal(staleManifest.headers['docker-content-digest'], digest);
      assert.equal(staleManifest.headers['x-drp-stale'], '1');
      // The anonymous class never saw this manifest: no stale answer for it.
      const anonymous = await third.send('GET', '/v2/team/app/manifests/v1', ACCEPT);
      assert.equal(anonymous.status, 502);
      await third.close();
    } finally {
      await upstream.close();
      rmSync(cacheDir, { recursive: true, force: true });
    }
  });

  test('a ping with nothing remembered passes the upstream error through', async () => {
    const upstream = await startFakeRegistry();
    const proxy = await drive({ target: upstream.target });
    try {
      upstream.override = tooMany;
      const res = await proxy.send('GET', '/v2/');
      assert.equal(res.status, 429);
      assert.equal(res.headers['retry-after'], '3600');
      upstream.override = undefined;
      assert.equal((await proxy.send('GET', '/v2/')).status, 200);
      upstream.override = tooMany;
      const stale = await proxy.send('GET', '/v2/');
      assert.equal(stale.status, 200);
      assert.equal(stale.headers['x-drp-stale'], '1');
      assert.equal(proxy.stale.length, 1);
    } finally {
      await proxy.close();
      await upstream.close();
    }
  });
});
