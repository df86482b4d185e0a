// The original's tag tiers: order, anchoring, TTLs and explain().
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { resolveOptions } from '../src/options.ts';
import { TagTiers } from '../src/policy/tiers.ts';

function tiers(manifestCache = {}) {
  return new TagTiers(resolveOptions({ cacheDir: '/tmp/x', manifestCache }).manifestCache);
}

describe('default tiers', () => {
  const t = tiers({ enabled: true });

  for (const tag of [
    'stable',
    'stable-alpine',
    'nightly',
    'production',
    'test',
    'testing',
    'nightly-1.2.3',
  ]) {
    test(`${tag} is primary (10m)`, () => {
      const d = t.classify(tag);
      assert.equal(d.tier, 'primary');
      assert.equal(d.ttlMs, 10 * 60_000);
      assert.equal(d.requestType, 'manifest-primary');
    });
  }
  for (const tag of [
    '1.2.3',
    'v1.2.3',
    '3.19',
    '20240101',
    'alpine3.19',
    'v1.0.0-rc1',
    'latest-1.2',
    '1.2',
  ]) {
    test(`${tag} is secondary (60d)`, () => {
      const d = t.classify(tag);
      assert.equal(d.tier, 'secondary', d.explain());
      assert.equal(d.ttlMs, 60 * 86_400_000);
      assert.equal(d.requestType, 'manifest-secondary');
    });
  }
  for (const tag of ['latest', 'alpine', 'main', 'v1', 'v12', 'edge', 'my-stable', 'latest-test']) {
    test(`${tag} is default (1h)`, () => {
      const d = t.classify(tag);
      assert.equal(d.tier, 'default', d.explain());
      assert.equal(d.ttlMs, 3_600_000);
      assert.equal(d.requestType, 'manifest-default');
    });
  }

  test('primary wins over secondary (checked first)', () => {
    assert.equal(t.classify('stable-1.2.3').tier, 'primary');
  });

  test('explain() says which regex matched and for how long', () => {
    assert.match(
      t.classify('stable-alpine').explain(),
      /primary regex \^\(stable\|nightly\|production\|test\): 10m/,
    );
    assert.match(t.classify('latest').explain(), /neither.*: 1h/);
    assert.match(t.explain(), /primary .* for 10m, then secondary .* for 60d, else default for 1h/);
    assert.match(tiers().explain(), /always asked upstream/);
  });
});

describe('custom tiers', () => {
  test("widening the primary tier to :latest, as the original's README suggests", () => {
    const t = tiers({
      enabled: true,
      primaryRegex: '(stable|latest)',
      primaryTime: '30m',
      defaultTime: '5m',
    });
    assert.equal(t.classify('latest').tier, 'primary');
    assert.equal(t.classify('latest').ttlMs, 30 * 60_000);
    assert.equal(t.classify('main').ttlMs, 5 * 60_000);
  });

  test('an anchored-at-end fragment still only anchors where the author did', () => {
    const t = tiers({ enabled: true, secondaryRegex: 'v[0-9]+$' });
    assert.equal(t.classify('v12').tier, 'secondary');
    assert.equal(t.classify('v12-alpine').tier, 'default');
    assert.equal(t.classify('xv12').tier, 'default');
  });
});
