// The route grammar: names, tags, digests and upload paths, per the distribution spec.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DrpError } from '../src/api/errors.ts';
import { isValidName, isValidTag, parseDigest, parseRoute } from '../src/api/route.ts';

const SHA = `sha256:${'a'.repeat(64)}`;
const SHA512 = `sha512:${'b'.repeat(128)}`;

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof DrpError);
    return error.code;
  }
  assert.fail('expected an error');
}

describe('names', () => {
  for (const name of [
    'alpine',
    'library/alpine',
    'a/b/c/d',
    'my-app',
    'my--app',
    'my_app',
    'my__app',
    'a.b',
    'a0/b1',
    'x'.repeat(255),
  ]) {
    test(`valid: ${name.slice(0, 40)}`, () => assert.equal(isValidName(name), true));
  }
  for (const name of [
    '',
    'Alpine',
    'a//b',
    '/a',
    'a/',
    '-a',
    'a-',
    'a___b',
    'a..b',
    'a.-b',
    'a b',
    '../etc',
    'x'.repeat(256),
    'a/./b',
  ]) {
    test(`invalid: ${JSON.stringify(name.slice(0, 40))}`, () => assert.equal(isValidName(name), false));
  }
});

describe('tags', () => {
  for (const tag of ['latest', 'v1.2.3', '_x', '1', 'A-b_c.d', 'x'.repeat(128)]) {
    test(`valid: ${tag.slice(0, 40)}`, () => assert.equal(isValidTag(tag), true));
  }
  for (const tag of ['', '.hidden', '-x', 'a/b', 'a:b', 'x'.repeat(129), 'a b', 'ü']) {
    test(`invalid: ${JSON.stringify(tag.slice(0, 40))}`, () => assert.equal(isValidTag(tag), false));
  }
});

describe('digests', () => {
  test('sha256 and sha512', () => {
    assert.deepEqual(parseDigest(SHA), { algorithm: 'sha256', hex: 'a'.repeat(64) });
    assert.equal(parseDigest(SHA512).algorithm, 'sha512');
  });
  for (const bad of [
    `sha256:${'A'.repeat(64)}`,
    `sha256:${'a'.repeat(63)}`,
    'sha256:',
    'md5:abc',
    `sha256:${'a'.repeat(64)}/..`,
    'nocolon',
    `SHA256:${'a'.repeat(64)}`,
  ]) {
    test(`invalid: ${bad.slice(0, 30)}`, () =>
      assert.equal(
        code(() => parseDigest(bad)),
        'DRP_DIGEST_INVALID',
      ));
  }
});

describe('parseRoute', () => {
  test('ping, catalog and other', () => {
    assert.equal(parseRoute('/v2/').kind, 'ping');
    assert.equal(parseRoute('/v2').kind, 'ping');
    assert.equal(parseRoute('/v2/_catalog').kind, 'catalog');
    assert.equal(parseRoute('/token').kind, 'other');
    assert.equal(parseRoute('/v1/search').kind, 'other');
    assert.equal(parseRoute('/v2/library/alpine/something/else').kind, 'other');
  });

  test('manifests by tag and by digest', () => {
    assert.deepEqual(parseRoute('/v2/library/alpine/manifests/latest'), {
      kind: 'manifest',
      name: 'library/alpine',
      reference: 'latest',
      tag: 'latest',
    });
    assert.deepEqual(parseRoute(`/v2/a/b/c/manifests/${SHA}`), {
      kind: 'manifest',
      name: 'a/b/c',
      reference: SHA,
      digest: SHA,
    });
    // A repository may itself contain a "manifests" component.
    assert.equal(parseRoute('/v2/manifests/manifests/latest').name, 'manifests');
  });

  test('blobs, tags, referrers', () => {
    assert.deepEqual(parseRoute(`/v2/library/alpine/blobs/${SHA}`), {
      kind: 'blob',
      name: 'library/alpine',
      reference: SHA,
      digest: SHA,
    });
    assert.deepEqual(parseRoute('/v2/library/alpine/tags/list'), { kind: 'tags', name: 'library/alpine' });
    assert.deepEqual(parseRoute(`/v2/library/alpine/referrers/${SHA}`), {
      kind: 'referrers',
      name: 'library/alpine',
      digest: SHA,
    });
  });

  test('upload paths', () => {
    assert.deepEqual(parseRoute('/v2/team/app/blobs/uploads/'), { kind: 'upload-start', name: 'team/app' });
    assert.deepEqual(parseRoute('/v2/team/app/blobs/uploads'), { kind: 'upload-start', name: 'team/app' });
    assert.deepEqual(parseRoute('/v2/team/app/blobs/uploads/3f1c-uuid_x.y=z'), {
      kind: 'upload',
      name: 'team/app',
      uploadId: '3f1c-uuid_x.y=z',
    });
    assert.equal(
      code(() => parseRoute('/v2/team/app/blobs/uploads/bad%20id')),
      'DRP_PATH_INVALID',
    );
  });

  test('invalid parts are 400s with stable codes, never paths', () => {
    assert.equal(
      code(() => parseRoute('/v2/Library/alpine/manifests/latest')),
      'DRP_NAME_INVALID',
    );
    assert.equal(
      code(() => parseRoute('/v2/../etc/manifests/latest')),
      'DRP_PATH_INVALID',
    );
    assert.equal(
      code(() => parseRoute('/v2/library/./alpine/manifests/latest')),
      'DRP_PATH_INVALID',
    );
    assert.equal(
      code(() => parseRoute('/v2/library/alpine/manifests/.latest')),
      'DRP_REFERENCE_INVALID',
    );
    assert.equal(
      code(() => parseRoute('/v2/library/alpine/manifests/md5:abc')),
      'DRP_DIGEST_INVALID',
    );
    assert.equal(
      code(() => parseRoute('/v2/library/alpine/blobs/latest')),
      'DRP_DIGEST_INVALID',
    );
    assert.equal(
      code(() => parseRoute('/v2/library/alpine/blobs/%E0%A4%A')),
      'DRP_PATH_INVALID',
    );
    assert.equal(
      code(() => parseRoute('/v2/library%2Falpine/manifests/latest')),
      'DRP_PATH_INVALID',
    );
    assert.equal(
      code(() => parseRoute('/v2/library/alpine/manifests/v1%2F..')),
      'DRP_PATH_INVALID',
    );
    // Encoded characters that are legal stay legal.
    assert.equal(parseRoute('/v2/library/alpine/manifests/v%31').tag, 'v1');
  });
});
