import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isDrpError } from '../src/api/errors.ts';
import { isValidName, isValidTag, parseDigest, parseRoute } from '../src/api/route.ts';
import { blobEtag, notModified, parseRange, rangeFor } from '../src/http/range.ts';

const D = `sha256:${'a'.repeat(64)}`;
const D512 = `sha512:${'b'.repeat(128)}`;

function rejects(path: string, code: string) {
  assert.throws(
    () => parseRoute(path),
    (e) => isDrpError(e) && e.code === code,
    path,
  );
}

describe('route grammar', () => {
  test('names every registry API route', () => {
    assert.deepEqual(parseRoute('/v2/'), { kind: 'ping' });
    assert.deepEqual(parseRoute('/v2'), { kind: 'ping' });
    assert.deepEqual(parseRoute('/v2/_catalog'), { kind: 'catalog' });
    assert.deepEqual(parseRoute(`/v2/library/alpine/blobs/${D}`), {
      kind: 'blob',
      name: 'library/alpine',
      reference: D,
      digest: D,
    });
    assert.equal(parseRoute(`/v2/a/b/c/d/blobs/${D512}`).name, 'a/b/c/d');
    assert.deepEqual(parseRoute('/v2/library/alpine/manifests/3.19'), {
      kind: 'manifest',
      name: 'library/alpine',
      reference: '3.19',
      tag: '3.19',
    });
    assert.equal(parseRoute(`/v2/library/alpine/manifests/${D}`).digest, D);
    assert.deepEqual(parseRoute('/v2/library/alpine/tags/list'), { kind: 'tags', name: 'library/alpine' });
    assert.equal(parseRoute(`/v2/x/referrers/${D}`).kind, 'referrers');
    assert.deepEqual(parseRoute('/v2/x/blobs/uploads/'), { kind: 'upload-start', name: 'x' });
    assert.deepEqual(parseRoute('/v2/x/y/blobs/uploads/0a1b-2c3d'), {
      kind: 'upload',
      name: 'x/y',
      uploadId: '0a1b-2c3d',
    });
    assert.deepEqual(parseRoute('/token'), { kind: 'other' });
    assert.deepEqual(parseRoute('/v2/x/something/else'), { kind: 'other' });
    // A repository may itself be called "blobs" or "manifests".
    assert.equal(parseRoute(`/v2/blobs/blobs/${D}`).name, 'blobs');
    assert.equal(parseRoute('/v2/org/manifests/manifests/latest').name, 'org/manifests');
  });

  test('names follow the distribution grammar', () => {
    for (const ok of ['a', 'library/alpine', 'a.b_c__d-e--f/g', 'x0/y1/z2', 'a'.repeat(255)]) {
      assert.equal(isValidName(ok), true, ok);
    }
    for (const bad of ['A', 'a/', '/a', 'a//b', 'a_', '-a', 'a___b', 'a..b', 'a.-b', 'ä', 'a'.repeat(256)]) {
      assert.equal(isValidName(bad), false, bad);
    }
    rejects(`/v2/Library/alpine/blobs/${D}`, 'DRP_NAME_INVALID');
    rejects('/v2/a__-b/manifests/latest', 'DRP_NAME_INVALID');
  });

  test('tags follow the distribution grammar', () => {
    for (const ok of ['latest', 'v1.2.3', '_x', 'A-b.c_d', 'a'.repeat(128)])
      assert.equal(isValidTag(ok), true, ok);
    for (const bad of ['.x', '-x', 'a'.repeat(129), 'a/b', 'a:b', 'a+b', ''])
      assert.equal(isValidTag(bad), false, bad);
    rejects('/v2/x/manifests/-bad', 'DRP_REFERENCE_INVALID');
  });

  test('digests: sha256 and sha512 with lowercase hex of the right length only', () => {
    assert.deepEqual(parseDigest(D), { algorithm: 'sha256', hex: 'a'.repeat(64) });
    for (const bad of [
      `sha256:${'A'.repeat(64)}`,
      `sha256:${'a'.repeat(63)}`,
      `sha256:${'a'.repeat(65)}`,
      `sha512:${'a'.repeat(64)}`,
      `md5:${'a'.repeat(32)}`,
      'sha256',
      `SHA256:${'a'.repeat(64)}`,
      `sha256:${'g'.repeat(64)}`,
    ]) {
      assert.throws(
        () => parseDigest(bad),
        (e) => isDrpError(e) && e.code === 'DRP_DIGEST_INVALID',
        bad,
      );
      rejects(`/v2/x/blobs/${bad}`, 'DRP_DIGEST_INVALID');
    }
    rejects('/v2/x/referrers/nope', 'DRP_DIGEST_INVALID');
  });

  test('paths that could escape: dot segments, encoded slashes, bad escapes', () => {
    rejects('/v2/x/blobs/sha256:../../etc/passwd', 'DRP_PATH_INVALID');
    rejects('/v2/../../etc/passwd', 'DRP_PATH_INVALID');
    rejects('/v2/x/./blobs/uploads/', 'DRP_PATH_INVALID');
    rejects('/v2/x/blobs/%2e%2e', 'DRP_PATH_INVALID');
    rejects('/v2/x/blobs/sha256%3A..%2F..%2Fx', 'DRP_PATH_INVALID');
    rejects('/v2/x/blobs/%zz', 'DRP_PATH_INVALID');
    rejects('/v2/x/blobs/uploads/bad id', 'DRP_PATH_INVALID');
  });
});

describe('Range', () => {
  test('single ranges, suffixes, open ends, clamping', () => {
    assert.deepEqual(parseRange('bytes=0-9', 100), { kind: 'partial', start: 0, end: 9 });
    assert.deepEqual(parseRange('bytes=90-', 100), { kind: 'partial', start: 90, end: 99 });
    assert.deepEqual(parseRange('bytes=-10', 100), { kind: 'partial', start: 90, end: 99 });
    assert.deepEqual(parseRange('bytes=-1000', 100), { kind: 'partial', start: 0, end: 99 });
    assert.deepEqual(parseRange('bytes=50-1000', 100), { kind: 'partial', start: 50, end: 99 });
    assert.deepEqual(parseRange(' bytes = 5 - 6 ', 100), { kind: 'partial', start: 5, end: 6 });
  });

  test('unsatisfiable, ignored and multiple ranges', () => {
    assert.deepEqual(parseRange('bytes=100-', 100), { kind: 'unsatisfiable' });
    assert.deepEqual(parseRange('bytes=-0', 100), { kind: 'unsatisfiable' });
    assert.deepEqual(parseRange('bytes=0-0', 0), { kind: 'unsatisfiable' });
    for (const ignored of [undefined, 'items=0-1', 'bytes=5-1', 'bytes=a-b', 'bytes=-', 'bytes=0-1,3-4']) {
      assert.deepEqual(parseRange(ignored, 100), { kind: 'full' }, String(ignored));
    }
  });

  test('If-Range needs the strong ETag; If-None-Match gives 304', () => {
    const etag = blobEtag(D);
    assert.deepEqual(rangeFor({ range: 'bytes=0-1', 'if-range': etag }, 10, etag), {
      kind: 'partial',
      start: 0,
      end: 1,
    });
    assert.deepEqual(rangeFor({ range: 'bytes=0-1', 'if-range': '"other"' }, 10, etag), { kind: 'full' });
    assert.deepEqual(
      rangeFor({ range: 'bytes=0-1', 'if-range': 'Wed, 21 Oct 2015 07:28:00 GMT' }, 10, etag),
      {
        kind: 'full',
      },
    );
    assert.equal(notModified({ 'if-none-match': `"x", ${etag}` }, etag), true);
    assert.equal(notModified({ 'if-none-match': '*' }, etag), true);
    assert.equal(notModified({ 'if-none-match': '"x"' }, etag), false);
    assert.equal(notModified({}, etag), false);
  });
});
