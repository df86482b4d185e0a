// nginx-style sizes and durations, as the original's variables use them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDuration, parseSize } from '../src/units.ts';

test('sizes: bytes, k, m, g, t in either case, optional b', () => {
  assert.equal(parseSize('512'), 512);
  assert.equal(parseSize('100k'), 100 * 1024);
  assert.equal(parseSize('64M'), 64 * 1024 ** 2);
  assert.equal(parseSize('32g'), 32 * 1024 ** 3);
  assert.equal(parseSize('1T'), 1024 ** 4);
  assert.equal(parseSize('10mb'), 10 * 1024 ** 2);
  assert.equal(parseSize(' 2g '), 2 * 1024 ** 3);
  assert.equal(parseSize('1.5g'), 1.5 * 1024 ** 3);
});

test('sizes: anything else is undefined', () => {
  for (const bad of ['', 'g', '32x', '-1g', '1 0g', '32gg', 'ten'])
    assert.equal(parseSize(bad), undefined, bad);
});

test('durations: nginx units, a bare number is seconds', () => {
  assert.equal(parseDuration('10m'), 600_000);
  assert.equal(parseDuration('60d'), 60 * 86_400_000);
  assert.equal(parseDuration('1h'), 3_600_000);
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('30s'), 30_000);
  assert.equal(parseDuration('60'), 60_000);
  assert.equal(parseDuration('2w'), 14 * 86_400_000);
  assert.equal(parseDuration('1M'), 30 * 86_400_000);
  assert.equal(parseDuration('1y'), 365 * 86_400_000);
  assert.equal(parseDuration(' 1h30m '), 5_400_000);
  assert.equal(parseDuration('1d12h'), 36 * 3_600_000);
});

test('durations: m is a minute and M a month, as in nginx', () => {
  assert.notEqual(parseDuration('1m'), parseDuration('1M'));
});

test('durations: anything else is undefined', () => {
  for (const bad of ['', 'h', '10x', '1h 30m', '-5m', '1.5h', 'm10', '10mm', '1h-']) {
    assert.equal(parseDuration(bad), undefined, bad);
  }
});
