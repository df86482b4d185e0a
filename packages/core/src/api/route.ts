/**
 * Names a registry API request from its path, using the distribution spec's grammars.
 * Anything that fails a grammar is rejected here, so no unchecked string ever reaches the
 * file system or an upstream URL built from parts.
 */
import { DrpError } from './errors.js';
import { parseRequestTarget } from './request-target.js';

const NAME_COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const NAME_RE = new RegExp(`^${NAME_COMPONENT}(?:/${NAME_COMPONENT})*$`);
const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const DIGEST_RE = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const KNOWN_DIGESTS: Record<string, RegExp> = {
  sha256: /^[a-f0-9]{64}$/,
  sha512: /^[a-f0-9]{128}$/,
};
/** The spec caps a repository name (with the registry host) at 255 characters. */
const MAX_NAME_LENGTH = 255;

export type RouteKind =
  | 'ping'
  | 'blob'
  | 'manifest'
  | 'tags'
  | 'referrers'
  | 'upload-start'
  | 'upload'
  | 'catalog'
  | 'other';

/** Fields a route kind does not have read as `undefined`, so `route.name` is valid on any route. */
interface NoFields {
  readonly name?: undefined;
  readonly reference?: undefined;
  readonly digest?: undefined;
  readonly tag?: undefined;
  readonly uploadId?: undefined;
}
type With<K extends RouteKind, F> = Omit<NoFields, keyof F> & { readonly kind: K } & F;

/**
 * A named registry API request. `name` is a repository (`library/alpine`), `reference` a
 * manifest's tag or digest, `digest` set when the reference (or the blob) is a digest, `tag`
 * when a manifest reference is a tag, `uploadId` the session of an `upload`.
 */
export type Route =
  | With<'ping' | 'catalog' | 'other', unknown>
  | With<'blob', { name: string; reference: string; digest: string }>
  | With<'manifest', { name: string; reference: string; digest: string }>
  | With<'manifest', { name: string; reference: string; tag: string }>
  | With<'tags', { name: string }>
  | With<'referrers', { name: string; digest: string }>
  | With<'upload-start', { name: string }>
  | With<'upload', { name: string; uploadId: string }>;

export interface ParsedDigest {
  readonly algorithm: string;
  readonly hex: string;
}

/** Validates `algorithm:encoded`; throws DRP_DIGEST_INVALID. Only sha256/sha512 are cacheable. */
export function parseDigest(digest: string): ParsedDigest {
  if (!DIGEST_RE.test(digest)) {
    throw new DrpError('DRP_DIGEST_INVALID', `invalid digest: ${truncate(digest)}`);
  }
  const colon = digest.indexOf(':');
  const algorithm = digest.slice(0, colon);
  const hex = digest.slice(colon + 1);
  const expected = KNOWN_DIGESTS[algorithm];
  if (!expected) {
    throw new DrpError('DRP_DIGEST_INVALID', `unsupported digest algorithm: ${truncate(algorithm)}`);
  }
  if (!expected.test(hex)) {
    throw new DrpError('DRP_DIGEST_INVALID', `invalid ${algorithm} digest: ${truncate(digest)}`);
  }
  return { algorithm, hex };
}

export function isValidName(name: string): boolean {
  return name.length <= MAX_NAME_LENGTH && NAME_RE.test(name);
}

export function isValidTag(tag: string): boolean {
  return TAG_RE.test(tag);
}

function checkName(name: string): string {
  if (!isValidName(name)) {
    throw new DrpError('DRP_NAME_INVALID', `invalid repository name: ${truncate(name)}`);
  }
  return name;
}

/**
 * Parses the path part of a request URL (query already removed): canonicalised by
 * parseRequestTarget, then named. Returns `other` for paths outside `/v2/`.
 */
export function parseRoute(path: string): Route {
  return routeOf(parseRequestTarget(path).pathname);
}

/**
 * Names a canonical path (the `pathname` of parseRequestTarget: decoded once, no dot
 * segments, no encoded separators). Returns `other` for paths outside `/v2/`, which callers
 * pass through untouched.
 */
export function routeOf(pathname: string): Route {
  if (pathname === '/v2' || pathname === '/v2/') return { kind: 'ping' };
  if (!pathname.startsWith('/v2/')) return { kind: 'other' };
  if (pathname === '/v2/_catalog') return { kind: 'catalog' };

  const rest = pathname.slice('/v2/'.length);
  const parts = rest.split('/');

  // Match from the end: the repository name itself may contain slashes.
  const n = parts.length;
  const last = parts[n - 1] ?? '';
  const secondLast = parts[n - 2];
  const thirdLast = parts[n - 3];

  if (secondLast === 'blobs' && n >= 3) {
    const name = checkName(parts.slice(0, n - 2).join('/'));
    if (last === 'uploads') return { kind: 'upload-start', name };
    parseDigest(last);
    return { kind: 'blob', name, reference: last, digest: last };
  }
  if (secondLast === 'uploads' && thirdLast === 'blobs' && n >= 4) {
    const name = checkName(parts.slice(0, n - 3).join('/'));
    // `blobs/uploads/` with a trailing slash starts an upload.
    if (last === '') return { kind: 'upload-start', name };
    if (!/^[A-Za-z0-9._=-]{1,256}$/.test(last)) {
      throw new DrpError('DRP_PATH_INVALID', 'invalid upload session id');
    }
    return { kind: 'upload', name, uploadId: last };
  }
  if (secondLast === 'manifests' && n >= 3) {
    const name = checkName(parts.slice(0, n - 2).join('/'));
    if (last.includes(':')) {
      parseDigest(last);
      return { kind: 'manifest', name, reference: last, digest: last };
    }
    if (!isValidTag(last)) {
      throw new DrpError('DRP_REFERENCE_INVALID', `invalid tag: ${truncate(last)}`);
    }
    return { kind: 'manifest', name, reference: last, tag: last };
  }
  if (secondLast === 'tags' && last === 'list' && n >= 3) {
    return { kind: 'tags', name: checkName(parts.slice(0, n - 2).join('/')) };
  }
  if (secondLast === 'referrers' && n >= 3) {
    parseDigest(last);
    return { kind: 'referrers', name: checkName(parts.slice(0, n - 2).join('/')), digest: last };
  }
  return { kind: 'other' };
}

function truncate(value: string): string {
  return value.length > 80 ? `${value.slice(0, 77)}...` : value;
}
