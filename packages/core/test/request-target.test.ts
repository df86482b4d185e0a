// The one reading of a request target: examples of every evasion seen in the security review,
// and property-based checks (bounded) that whatever the parser accepts is read the same way by
// an upstream that decodes once, by a WHATWG URL parser, and by the parser itself again.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { DrpError } from '../src/api/errors.ts';
import { parseRequestTarget } from '../src/api/request-target.ts';
import { routeOf } from '../src/api/route.ts';

function code(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (error) {
    return error instanceof DrpError ? error.code : 'not a DrpError';
  }
}

describe('parseRequestTarget', () => {
  test('encoded spellings of /v2/ are read as /v2/ (routed, never passed through as "other")', () => {
    for (const raw of [
      '/%762/team/app/blobs/uploads/',
      '/v%32/team/app/blobs/uploads/',
      '/%76%32/team/app/blobs/uploads/',
    ]) {
      const target = parseRequestTarget(raw);
      assert.equal(target.pathname, '/v2/team/app/blobs/uploads/');
      assert.equal(routeOf(target.pathname).kind, 'upload-start');
    }
    assert.equal(parseRequestTarget('/v2/a/manifests/sha256%3Aab').pathname, '/v2/a/manifests/sha256:ab');
  });

  test('encoded separators, escapes, dot segments and empty segments are 400s', () => {
    for (const raw of [
      '/v2%2fteam/app/manifests/latest',
      '/v2%2Fteam/app/manifests/latest',
      '/v2/team%5capp/manifests/latest',
      '/v2/team/%2e%2e/manifests/latest',
      '/v2/team/./app/manifests/latest',
      '/v2/team/../app/manifests/latest',
      '/v2//team/app/manifests/latest',
      '/v2/team/app/manifests/%252f',
      '/v2/team/app/manifests/%00',
      '/v2/team/app/manifests/%zz',
      '/v2/team/app/manifests/%4',
      '/v2/team/app/manifests/caf%C3%A9',
      '/v2/team/app/manifests/a b',
      'v2/team/app/manifests/latest',
      '',
      '*',
      `/${'a'.repeat(9000)}`,
    ]) {
      assert.equal(
        code(() => parseRequestTarget(raw)),
        'DRP_PATH_INVALID',
        raw.slice(0, 60),
      );
    }
  });

  test('the query is kept as sent, and must be printable', () => {
    const target = parseRequestTarget('/token?service=a&scope=repository%3Ax%3Apull');
    assert.equal(target.query, 'service=a&scope=repository%3Ax%3Apull');
    assert.equal(target.pathAndQuery, '/token?service=a&scope=repository%3Ax%3Apull');
    assert.equal(parseRequestTarget('/v2/').query, undefined);
    assert.equal(
      code(() => parseRequestTarget('/v2/?a=\u0001')),
      'DRP_PATH_INVALID',
    );
  });
});

/** Raw targets built from pieces an attacker would use: encodings, separators, dots. */
const piece = fc.constantFrom(
  'v2',
  'v',
  '2',
  'team',
  'app',
  'manifests',
  'blobs',
  'uploads',
  'latest',
  'sha256:ab',
  '/',
  '//',
  '.',
  '..',
  '%2f',
  '%2F',
  '%2e',
  '%2E',
  '%25',
  '%5c',
  '%76',
  '%32',
  '%3a',
  '%00',
  '%',
  '%zz',
  '\\',
  ';',
  '?',
  '#',
  ' ',
  '@',
  ':',
  '~',
  'é',
  '%C3%A9',
  "'",
  '+',
  '=',
  '&',
);
const rawTarget = fc.array(piece, { maxLength: 14 }).map((parts) => `/${parts.join('')}`);
const anyString = fc.string({ maxLength: 64, unit: 'binary-ascii' }).map((s) => `/${s}`);

function checkAccepted(raw: string): void {
  let target: ReturnType<typeof parseRequestTarget>;
  try {
    target = parseRequestTarget(raw);
  } catch (error) {
    assert.ok(error instanceof DrpError && error.code === 'DRP_PATH_INVALID', String(error));
    return;
  }
  const { pathname, pathAndQuery } = target;
  // An upstream that decodes once reads exactly what drp routed.
  assert.equal(decodeURIComponent(pathname), pathname);
  // A WHATWG parser (as in got) neither normalises nor re-encodes it.
  assert.equal(new URL(`https://registry.test${pathAndQuery}`).pathname, pathname);
  // Canonical: a fixpoint of the parser.
  assert.deepEqual(parseRequestTarget(pathAndQuery), target);
  for (const segment of pathname.split('/').slice(1, -1)) {
    assert.ok(segment !== '' && segment !== '.' && segment !== '..', pathname);
  }
  // Printable ASCII only, and neither `%` nor `\`.
  assert.ok(
    [...pathname].every((ch) => ch > ' ' && ch <= '~' && ch !== '%' && ch !== '\\'),
    pathname,
  );
  // A route is a pure function of the canonical path: no route sees another spelling.
  try {
    routeOf(pathname);
  } catch (error) {
    assert.ok(error instanceof DrpError, String(error));
  }
}

describe('parseRequestTarget, properties', () => {
  test('accepted targets are canonical and read the same by every later parser', () => {
    fc.assert(fc.property(rawTarget, checkAccepted), { numRuns: 3000 });
    fc.assert(fc.property(anyString, checkAccepted), { numRuns: 3000 });
  });

  test('any spelling of a registry path routes like its decoded form', () => {
    const encode = (s: string) =>
      [...s]
        .map((ch) =>
          ch !== '/' && Math.random() < 0.3 ? `%${ch.charCodeAt(0).toString(16).padStart(2, '0')}` : ch,
        )
        .join('');
    const name = fc.stringMatching(/^[a-z0-9]{1,8}(\/[a-z0-9]{1,8}){0,2}$/);
    const tag = fc.stringMatching(/^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,12}$/);
    fc.assert(
      fc.property(name, tag, (n, t) => {
        const plain = `/v2/${n}/manifests/${t}`;
        const target = parseRequestTarget(encode(plain));
        assert.equal(target.pathname, plain);
        assert.deepEqual(routeOf(target.pathname), routeOf(plain));
      }),
      { numRuns: 1000 },
    );
  });
});
