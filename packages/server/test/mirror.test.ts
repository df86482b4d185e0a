// Mirror routing: which registry a `/v2/...` request sent to drp itself is for, and the path
// served upstream (ns and the host prefix removed). The e2e tests drive it with real clients.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isMirrorPath, routeMirrorRequest } from '../src/mirror.ts';

const intercepted = new Set([
  'registry-1.docker.io:443',
  'ghcr.io:443',
  'registry.test:5000',
  'localhost:5000',
]);
const rules = {
  intercepts: (host: string, port: number) => intercepted.has(`${host}:${port}`),
  defaultRegistry: 'docker.io',
};
const route = (url: string, defaultRegistry = 'docker.io') =>
  routeMirrorRequest(url, { ...rules, defaultRegistry });

test('only /v2 paths are mirror requests', () => {
  for (const url of ['/v2', '/v2/', '/v2?ns=ghcr.io', '/v2/library/alpine/manifests/3'])
    assert.ok(isMirrorPath(url), url);
  for (const url of ['/', '/ca.crt', '/v2x', '/metrics', '/v20/x']) assert.ok(!isMirrorPath(url), url);
});

test('the root ping with neither ns nor a prefix is answered by drp', () => {
  assert.deepEqual(route('/v2/'), { kind: 'ping' });
  assert.deepEqual(route('/v2'), { kind: 'ping' });
});

test("containerd's ns names the registry and never goes upstream; other query parameters do", () => {
  assert.deepEqual(route('/v2/team/app/manifests/v1?ns=registry.test:5000'), {
    kind: 'registry',
    target: { host: 'registry.test', port: 5000, protocol: 'https' },
    path: '/v2/team/app/manifests/v1',
  });
  assert.deepEqual(route('/v2/library/alpine/tags/list?n=10&ns=docker.io&last=a'), {
    kind: 'registry',
    target: { host: 'registry-1.docker.io', port: 443, protocol: 'https' },
    path: '/v2/library/alpine/tags/list?n=10&last=a',
  });
});

test("a host prefix by Docker's rule ('.', ':' or localhost); ns wins over it", () => {
  assert.deepEqual(route('/v2/ghcr.io/org/tool/blobs/sha256:abc'), {
    kind: 'registry',
    target: { host: 'ghcr.io', port: 443, protocol: 'https' },
    path: '/v2/org/tool/blobs/sha256:abc',
  });
  assert.deepEqual(route('/v2/localhost:5000/app/manifests/v1'), {
    kind: 'registry',
    target: { host: 'localhost', port: 5000, protocol: 'https' },
    path: '/v2/app/manifests/v1',
  });
  assert.deepEqual(route('/v2/docker.io/library/alpine/manifests/3'), {
    kind: 'registry',
    target: { host: 'registry-1.docker.io', port: 443, protocol: 'https' },
    path: '/v2/library/alpine/manifests/3',
  });
  const both = route('/v2/ghcr.io/org/tool/manifests/v1?ns=registry.test:5000');
  assert.equal(both.kind, 'registry');
  assert.deepEqual(both.kind === 'registry' && both.target, {
    host: 'registry.test',
    port: 5000,
    protocol: 'https',
  });
  assert.equal(both.kind === 'registry' && both.path, '/v2/org/tool/manifests/v1');
  // A prefix alone is a ping of that registry, passed upstream.
  assert.deepEqual(route('/v2/ghcr.io/'), {
    kind: 'registry',
    target: { host: 'ghcr.io', port: 443, protocol: 'https' },
    path: '/v2/',
  });
});

test('no ns and no prefix: MIRROR_DEFAULT_REGISTRY (dockerd registry-mirrors)', () => {
  assert.deepEqual(route('/v2/library/alpine/manifests/3.20'), {
    kind: 'registry',
    target: { host: 'registry-1.docker.io', port: 443, protocol: 'https' },
    path: '/v2/library/alpine/manifests/3.20',
  });
  assert.deepEqual(route('/v2/team/app/manifests/v1', 'registry.test:5000'), {
    kind: 'registry',
    target: { host: 'registry.test', port: 5000, protocol: 'https' },
    path: '/v2/team/app/manifests/v1',
  });
});

test('registries drp does not intercept are refused by name; malformed ones are invalid', () => {
  assert.deepEqual(route('/v2/x/manifests/v1?ns=quay.io'), { kind: 'refused', registry: 'quay.io:443' });
  assert.deepEqual(route('/v2/registry.test:6000/x/manifests/v1'), {
    kind: 'refused',
    registry: 'registry.test:6000',
  });
  assert.deepEqual(route('/v2/x/manifests/v1', 'quay.io'), { kind: 'refused', registry: 'quay.io:443' });
  assert.equal(route('/v2/x/manifests/v1?ns=a/b').kind, 'invalid');
  assert.equal(route('/v2/x/manifests/v1?ns=').kind, 'invalid');
});
