// Options: the defaults (the original's), tier regex semantics, validation and freezing.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DrpError } from '../src/api/errors.ts';
import { DEFAULTS, resolveOptions } from '../src/options.ts';

function invalid(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof DrpError);
    assert.equal(error.code, 'DRP_CONFIG_INVALID');
    assert.match(error.message, pattern);
    return true;
  });
}

describe('defaults', () => {
  const o = resolveOptions({ cacheDir: '/var/cache/drp' });

  test("the original's cache size, inactivity and push defaults", () => {
    assert.equal(o.maxSizeBytes, 32 * 1024 ** 3);
    assert.equal(o.inactiveMs, 60 * 86_400_000);
    assert.equal(o.allowPush, false);
    assert.equal(o.credentials.size, 0);
  });

  test("the original's manifest cache defaults", () => {
    assert.equal(o.manifestCache.enabled, false);
    assert.equal(o.manifestCache.primary.source, '(stable|nightly|production|test)');
    assert.equal(o.manifestCache.primary.ttlMs, 10 * 60_000);
    assert.equal(o.manifestCache.secondary.source, '(.*)(\\d|\\.)+(.*)(\\d|\\.)+(.*)(\\d|\\.)+');
    assert.equal(o.manifestCache.secondary.ttlMs, 60 * 86_400_000);
    assert.equal(o.manifestCache.defaultTtlMs, 3_600_000);
  });

  test('upstream defaults', () => {
    assert.equal(o.upstream.verifyTls, true);
    assert.equal(o.upstream.connectTimeoutMs, 60_000);
    assert.equal(o.upstream.responseTimeoutMs, 60_000);
    assert.equal(o.upstream.readTimeoutMs, 900_000);
    assert.equal(o.upstream.maxRedirects, 10);
    assert.equal(o.upstream.mappings.size, 0);
  });

  test('frozen', () => {
    assert.ok(Object.isFrozen(o));
    assert.ok(Object.isFrozen(o.manifestCache));
    assert.ok(Object.isFrozen(o.upstream));
    assert.ok(Object.isFrozen(DEFAULTS));
  });
});

describe('tier regexes: anchored at the start of the tag only', () => {
  const { primary, secondary } = resolveOptions({ cacheDir: '/x' }).manifestCache;
  test('stable-alpine and testing match primary; my-stable does not', () => {
    assert.ok(primary.regex.test('stable-alpine'));
    assert.ok(primary.regex.test('testing'));
    assert.ok(primary.regex.test('production'));
    assert.ok(!primary.regex.test('my-stable'));
    assert.ok(!primary.regex.test('latest'));
  });
  test('1.2.3 matches secondary; latest matches neither', () => {
    assert.ok(secondary.regex.test('1.2.3'));
    assert.ok(secondary.regex.test('v2.10'));
    assert.ok(!secondary.regex.test('latest'));
    assert.ok(!primary.regex.test('1.2.3'));
  });
  test('custom fragments and invalid ones', () => {
    const o = resolveOptions({ cacheDir: '/x', manifestCache: { primaryRegex: 'latest$' } });
    assert.ok(o.manifestCache.primary.regex.test('latest'));
    assert.ok(!o.manifestCache.primary.regex.test('not-latest'));
    invalid(
      () => resolveOptions({ cacheDir: '/x', manifestCache: { primaryRegex: '(unclosed' } }),
      /primaryRegex/,
    );
  });
});

describe('validation', () => {
  test('cacheDir is required', () => {
    invalid(() => resolveOptions({ cacheDir: '' }), /cacheDir/);
  });
  test('sizes and durations: nginx text or numbers', () => {
    const o = resolveOptions({
      cacheDir: '/x',
      maxSize: '512m',
      inactive: 1000,
      manifestCache: { primaryTime: '1h30m', secondaryTime: 5000, defaultTime: '90' },
    });
    assert.equal(o.maxSizeBytes, 512 * 1024 ** 2);
    assert.equal(o.inactiveMs, 1000);
    assert.equal(o.manifestCache.primary.ttlMs, 5_400_000);
    assert.equal(o.manifestCache.secondary.ttlMs, 5000);
    assert.equal(o.manifestCache.defaultTtlMs, 90_000);
    invalid(() => resolveOptions({ cacheDir: '/x', maxSize: '32 gigs' }), /maxSize.*"32 gigs"/);
    invalid(() => resolveOptions({ cacheDir: '/x', manifestCache: { defaultTime: 'soon' } }), /defaultTime/);
    invalid(() => resolveOptions({ cacheDir: '/x', inactive: -1 }), /inactive/);
  });
  test('credentials: keyed by lower-cased host, errors never show secrets', () => {
    const o = resolveOptions({
      cacheDir: '/x',
      credentials: [{ host: 'Auth.Docker.io', username: 'u', password: 'p' }],
    });
    assert.deepEqual(o.credentials.get('auth.docker.io'), { username: 'u', password: 'p' });
    invalid(
      () => resolveOptions({ cacheDir: '/x', credentials: [{ host: 'a.io', username: 'u', password: '' }] }),
      /credentials\[0\]: password is empty/,
    );
    try {
      resolveOptions({
        cacheDir: '/x',
        credentials: [{ host: 'bad host s3cret', username: 'u', password: 'p' }],
      });
      assert.fail('expected an error');
    } catch (error) {
      assert.ok(!String(error).includes('s3cret'));
    }
  });
  test('mappings, ipFamily and redirects', () => {
    const o = resolveOptions({
      cacheDir: '/x',
      upstream: {
        mappings: { 'registry.test': '127.0.0.1', 'other.test:5000': '10.0.0.5:6000' },
        ipFamily: 4,
      },
    });
    assert.deepEqual(o.upstream.mappings.get('registry.test'), { host: '127.0.0.1', port: 0 });
    assert.deepEqual(o.upstream.mappings.get('other.test:5000'), { host: '10.0.0.5', port: 6000 });
    invalid(() => resolveOptions({ cacheDir: '/x', upstream: { ipFamily: 5 as 4 } }), /ipFamily/);
    invalid(() => resolveOptions({ cacheDir: '/x', upstream: { maxRedirects: -1 } }), /maxRedirects/);
    invalid(() => resolveOptions({ cacheDir: '/x', upstream: { mappings: { 'a b': 'x' } } }), /mappings/);
  });
});
