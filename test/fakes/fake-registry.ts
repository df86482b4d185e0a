// An in-process, plain-HTTP fake registry for the core's unit tests: manifests per tag and media
// type (chosen by Accept like a real registry), optional Basic auth, a request log and a
// programmable failure hook. Integration tests use the real registry from test/harness instead.
import { createHash } from 'node:crypto';
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';

export interface LoggedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** Body bytes received (uploads). */
  bodyBytes: number;
}

export type Override = (req: IncomingMessage, res: ServerResponse) => boolean | Promise<boolean>;

export interface FakeRegistry {
  port: number;
  target: { host: string; port: number; protocol: 'http' };
  log: LoggedRequest[];
  count(filter?: { method?: string; path?: string | RegExp }): number;
  /** Sets the manifest a tag returns for a media type; returns its digest. */
  setManifest(name: string, tag: string, body: object): string;
  /** Answers instead of the fake when it returns true (e.g. a 429, a reset). */
  override: Override | undefined;
  /** Require `Authorization: Basic base64(user:pass)`. */
  basicAuth: { username: string; password: string } | undefined;
  close(): Promise<void>;
}

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';

/** A small manifest of a media type; `seed` varies its bytes (and so its digest). */
export function manifestBody(mediaType: string, seed = 'a'): object {
  return {
    schemaVersion: 2,
    mediaType,
    config: {
      mediaType: 'application/vnd.oci.image.config.v1+json',
      digest: sha256(`config-${seed}`),
      size: 10,
    },
    layers: [
      { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(`layer-${seed}`), size: 20 },
    ],
  };
}

export async function startFakeRegistry(): Promise<FakeRegistry> {
  const tags = new Map<string, Map<string, Buffer>>();
  const byDigest = new Map<string, { mediaType: string; data: Buffer }>();
  const log: LoggedRequest[] = [];

  const fake: FakeRegistry = {
    port: 0,
    target: { host: '127.0.0.1', port: 0, protocol: 'http' },
    log,
    count(filter = {}) {
      return log.filter(
        (r) =>
          (!filter.method || r.method === filter.method) &&
          (filter.path === undefined ||
            (typeof filter.path === 'string' ? r.path === filter.path : filter.path.test(r.path))),
      ).length;
    },
    setManifest(name, tag, body) {
      const data = Buffer.from(JSON.stringify(body));
      const mediaType = (body as { mediaType: string }).mediaType;
      const key = `${name}:${tag}`;
      const variants = tags.get(key) ?? new Map<string, Buffer>();
      variants.set(mediaType, data);
      tags.set(key, variants);
      const digest = sha256(data);
      byDigest.set(digest, { mediaType, data });
      return digest;
    },
    override: undefined,
    basicAuth: undefined,
    close: async () => undefined,
  };

  const handler = async (req: IncomingMessage, res: ServerResponse) => {
    let bodyBytes = 0;
    for await (const chunk of req) bodyBytes += (chunk as Buffer).length;
    const path = req.url ?? '/';
    log.push({ method: req.method ?? 'GET', path, headers: req.headers, bodyBytes });
    if (fake.override && (await fake.override(req, res))) return;
    if (fake.basicAuth) {
      const expected = `Basic ${Buffer.from(`${fake.basicAuth.username}:${fake.basicAuth.password}`).toString('base64')}`;
      if (req.headers.authorization !== expected) {
        const body = '{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}';
        res.writeHead(401, { 'www-authenticate': 'Basic realm="fake"', 'content-type': 'application/json' });
        res.end(req.method === 'HEAD' ? undefined : body);
        return;
      }
    }
    if (path === '/v2/') {
      res.writeHead(200, {
        'content-type': 'application/json',
        'docker-distribution-api-version': 'registry/2.0',
      });
      res.end(req.method === 'HEAD' ? undefined : '{}');
      return;
    }
    const m = /^\/v2\/(.+)\/manifests\/([^/?]+)$/.exec(path);
    if (m && (req.method === 'GET' || req.method === 'HEAD')) {
      const [, name = '', ref = ''] = m;
      let found: { mediaType: string; data: Buffer } | undefined;
      if (ref.includes(':')) found = byDigest.get(ref);
      else {
        const variants = tags.get(`${name}:${ref}`);
        if (variants) {
          const accept = String(req.headers.accept ?? '')
            .split(',')
            .map((a) => a.split(';')[0]?.trim());
          const type = [...variants.keys()].find((t) => accept.includes(t)) ?? [...variants.keys()][0];
          const data = type ? variants.get(type) : undefined;
          if (type && data) found = { mediaType: type, data };
        }
      }
      if (!found) {
        const body = '{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}';
        res.writeHead(404, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(req.method === 'HEAD' ? undefined : body);
        return;
      }
      res.writeHead(200, {
        'content-type': found.mediaType,
        'content-length': found.data.length,
        'docker-content-digest': sha256(found.data),
        'ratelimit-remaining': '99;w=21600',
      });
      res.end(req.method === 'HEAD' ? undefined : found.data);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found');
  };

  const server: Server = createServer((req, res) => {
    handler(req, res).catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(error));
      else res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  fake.port = port;
  fake.target = { host: '127.0.0.1', port, protocol: 'http' };
  fake.close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return fake;
}
