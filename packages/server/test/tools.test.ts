// Pure pieces of the operator tools: image references, auth challenges and files, the bounded
// metrics label, the status collector, log levels.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CacheEvents, type RequestOutcome } from '@drp/core';
import { createAccessLog } from '../src/access-log.ts';
import { normaliseDigest } from '../src/commands/cache-prune.ts';
import { limiter } from '../src/commands/prefetch.ts';
import { readAuthFile } from '../src/prefetch/authfile.ts';
import { parsePlatforms } from '../src/prefetch/pull.ts';
import { parseImageReference } from '../src/prefetch/reference.ts';
import { challengeParams } from '../src/prefetch/registry-session.ts';
import { registryLabeler } from '../src/registry-label.ts';
import { createStatsCollector } from '../src/stats.ts';

test('image references as docker reads them', () => {
  assert.deepEqual(parseImageReference('alpine'), {
    registry: 'registry-1.docker.io',
    name: 'library/alpine',
    reference: 'latest',
    text: 'alpine',
  });
  assert.equal(parseImageReference('docker.io/grafana/grafana:11.0').name, 'grafana/grafana');
  const local = parseImageReference(`localhost:5000/team/app@sha256:${'a'.repeat(64)}`);
  assert.deepEqual(
    [local.registry, local.name, local.reference],
    ['localhost:5000', 'team/app', `sha256:${'a'.repeat(64)}`],
  );
  assert.equal(parseImageReference('ghcr.io/org/app:1.2').registry, 'ghcr.io');
  assert.throws(() => parseImageReference('UPPER/case'), /not an image reference/);
  assert.throws(() => parseImageReference('app:bad tag'), /not an image reference/);
});

test('platform lists, digests for rm, the limiter', async () => {
  assert.equal(parsePlatforms('all'), undefined);
  assert.deepEqual(parsePlatforms('linux/amd64,linux/arm/v7'), [
    { os: 'linux', architecture: 'amd64' },
    { os: 'linux', architecture: 'arm', variant: 'v7' },
  ]);
  assert.throws(() => parsePlatforms('linux'), /--platform/);
  assert.equal(normaliseDigest('A'.repeat(64)), `sha256:${'a'.repeat(64)}`);
  assert.throws(() => normaliseDigest('sha256:abc'), /not a digest/);

  const limit = limiter(2);
  let running = 0;
  let peak = 0;
  await Promise.all(
    Array.from({ length: 6 }, () =>
      limit(async () => {
        running += 1;
        peak = Math.max(peak, running);
        await new Promise((r) => setTimeout(r, 10));
        running -= 1;
      }),
    ),
  );
  assert.equal(peak, 2);
});

test('auth challenges and docker-style auth files', async (t) => {
  assert.deepEqual(
    challengeParams(
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"',
    ),
    {
      realm: 'https://auth.docker.io/token',
      service: 'registry.docker.io',
      scope: 'repository:library/alpine:pull',
    },
  );
  const dir = mkdtempSync(join(tmpdir(), 'drp-auth-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'config.json');
  await writeFile(
    file,
    JSON.stringify({
      auths: {
        'https://index.docker.io/v1/': { auth: Buffer.from('hubuser:hubpass').toString('base64') },
        'registry.example:5000': { auth: Buffer.from('a:b:c').toString('base64') },
        'other.example': {},
      },
    }),
  );
  const creds = await readAuthFile(file, true);
  assert.deepEqual(creds.get('registry-1.docker.io'), { username: 'hubuser', password: 'hubpass' });
  assert.deepEqual(creds.get('registry.example:5000'), { username: 'a', password: 'b:c' });
  assert.equal(creds.has('other.example'), false);
  assert.equal((await readAuthFile(join(dir, 'absent.json'), false)).size, 0);
  await assert.rejects(readAuthFile(join(dir, 'absent.json'), true), /cannot read the auth file/);
});

test('the registry label only takes configured registries', () => {
  const label = registryLabeler([
    { host: 'ghcr.io', port: undefined },
    { host: 'registry.test', port: 5000 },
    { host: 'any.test', port: '*' },
  ]);
  assert.equal(label('ghcr.io:443'), 'ghcr.io:443');
  assert.equal(label('registry.test:5000'), 'registry.test:5000');
  assert.equal(label('registry.test:5001'), 'other');
  assert.equal(label('any.test:8443'), 'any.test:8443');
  assert.equal(label('cdn.example:443'), 'other');
});

function outcome(over: Partial<RequestOutcome>): RequestOutcome {
  return {
    method: 'GET',
    registry: 'ghcr.io:443',
    path: `/v2/org/app/blobs/sha256:${'b'.repeat(64)}`,
    requestType: 'blob-by-digest',
    cacheStatus: 'HIT',
    status: 200,
    bytes: 100,
    upstreamMs: undefined,
    totalMs: 5,
    error: undefined,
    aborted: false,
    ...over,
  };
}

test('the status collector: bytes by origin, repositories, registries, rate limits, timeline', () => {
  const events = new CacheEvents('test');
  let now = Date.UTC(2026, 0, 1, 12, 0, 30);
  const stats = createStatsCollector(events, () => now);
  events.publish('hit', { kind: 'blob', digest: 'sha256:x', size: 100 });
  stats.request(outcome({}));
  now += 60_000;
  events.publish('miss', { kind: 'blob', digest: 'sha256:y', size: 300 });
  stats.request(
    outcome({ cacheStatus: 'MISS', bytes: 300, path: `/v2/org/other/blobs/sha256:${'c'.repeat(64)}` }),
  );
  stats.request(outcome({ cacheStatus: 'BYPASS', requestType: 'ping', path: '/v2/', bytes: 2 }));
  const base = {
    method: 'GET',
    ms: 10,
    error: undefined,
    rateLimitLimit: undefined,
    rateLimitRemaining: undefined,
  };
  events.publish('upstream', {
    ...base,
    registry: 'registry-1.docker.io:443',
    status: 200,
    rateLimitLimit: 100,
    rateLimitRemaining: 42,
  });
  events.publish('upstream', { ...base, registry: 'registry-1.docker.io:443', status: 429 });
  events.publish('upstream', {
    ...base,
    registry: 'ghcr.io:443',
    status: undefined,
    error: 'DRP_UPSTREAM_UNREACHABLE',
  });

  const f = stats.figures();
  assert.equal(f.hits, 1);
  assert.equal(f.misses, 1);
  assert.equal(f.hitRatio, 0.5);
  assert.equal(f.bytesFromCache, 100);
  assert.equal(f.bytesFromUpstream, 302);
  assert.deepEqual(f.requestsByType, { 'blob-by-digest': 2, ping: 1 });
  assert.deepEqual(
    f.topRepositories.map((r) => [r.repository, r.bytes]),
    [
      ['ghcr.io:443/org/other', 300],
      ['ghcr.io:443/org/app', 100],
    ],
  );
  const hub = f.registries['registry-1.docker.io:443'];
  assert.equal(hub?.requests, 2);
  assert.equal(hub?.rateLimited, 1);
  assert.equal(hub?.rateLimitRemaining, 42, 'a 429 without headers keeps the last figures');
  assert.equal(hub?.lastError, 'GET answered 429');
  assert.equal(f.registries['ghcr.io:443']?.lastError, 'DRP_UPSTREAM_UNREACHABLE');
  assert.equal(f.timeline.length, 60);
  assert.deepEqual(
    f.timeline.slice(-2).map((p) => [p.hits, p.misses]),
    [
      [1, 0],
      [0, 1],
    ],
  );
  assert.deepEqual([...stats.rateLimits()], [['registry-1.docker.io:443', { limit: 100, remaining: 42 }]]);
  stats.close();
  events.publish('hit', { kind: 'blob', digest: 'sha256:x', size: 1 });
  assert.equal(stats.figures().hits, 1, 'closed: no longer listening');
});

test('log lines carry a level and durations in seconds', () => {
  const lines: string[] = [];
  const log = createAccessLog(
    'json',
    (l) => lines.push(l),
    () => new Date(0),
  );
  log.request(outcome({ totalMs: 1234, upstreamMs: 1000 }), '10.0.0.1');
  log.request(outcome({ status: 502, error: 'DRP_UPSTREAM_UNREACHABLE' }), '10.0.0.1');
  log.tunnel({
    type: 'tunnel',
    client: '10.0.0.1',
    host: 'x:443',
    bytesIn: 1,
    bytesOut: 2,
    ms: 1500,
    error: undefined,
    notTls: false,
  });
  log.event('warning', 'careful');
  const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(
    parsed.map((p) => p.level),
    ['info', 'error', 'info', 'warn'],
  );
  assert.equal(parsed[0]?.request_time, 1.234);
  assert.equal(parsed[0]?.upstream_response_time, 1);
  assert.equal(parsed[2]?.request_time, 1.5);
  assert.equal(parsed[2]?.ms, undefined);
  const text: string[] = [];
  createAccessLog(
    'text',
    (l) => text.push(l),
    () => new Date(0),
  ).request(outcome({ totalMs: 20 }), 'c');
  assert.match(text[0] ?? '', / total=0\.02s /);
});
