// AUTH_REGISTRIES parsing, the credential injection rule, auth classes, and that a shared cache
// never serves one client's private manifest to another.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { type Driven, drive } from '../../../test/fakes/drive.ts';
import {
  type FakeRegistry,
  manifestBody,
  OCI_MANIFEST,
  startFakeRegistry,
} from '../../../test/fakes/fake-registry.ts';
import { DrpError } from '../src/api/errors.ts';
import { parseAuthRegistries } from '../src/auth-registries.ts';
import { resolveOptions } from '../src/options.ts';
import { AuthClassifier } from '../src/policy/auth-class.ts';
import { isPullOnlyTokenQuery } from '../src/policy/injection.ts';
import { Credentials } from '../src/upstream/credentials.ts';

const GCR_KEY = JSON.stringify(
  {
    type: 'service_account',
    project_id: 'my-project',
    private_key: '-----BEGIN PRIVATE KEY-----\nMIIE: not really\n-----END PRIVATE KEY-----\n',
    client_email: 'puller@my-project.iam.gserviceaccount.com',
    token_uri: 'https://oauth2.googleapis.com/token',
  },
  null,
  2,
);

function rejects(
  value: string,
  pattern: RegExp,
  delimiters?: Parameters<typeof parseAuthRegistries>[1],
): string {
  try {
    parseAuthRegistries(value, delimiters);
  } catch (error) {
    assert.ok(error instanceof DrpError);
    assert.equal(error.code, 'DRP_CONFIG_INVALID');
    assert.match(error.message, pattern);
    return error.message;
  }
  assert.fail(`expected ${JSON.stringify(value)} to be rejected`);
}

describe('parseAuthRegistries', () => {
  test('the default delimiters: space between entries, colon between fields', () => {
    assert.deepEqual(parseAuthRegistries('auth.docker.io:hubuser:hubpass your.registry:user:pass'), [
      { host: 'auth.docker.io', username: 'hubuser', password: 'hubpass' },
      { host: 'your.registry', username: 'user', password: 'pass' },
    ]);
  });

  test('blank values and extra whitespace', () => {
    assert.deepEqual(parseAuthRegistries(undefined), []);
    assert.deepEqual(parseAuthRegistries(''), []);
    assert.deepEqual(parseAuthRegistries('  \n '), []);
    assert.deepEqual(parseAuthRegistries('  a.io:u:p\n\tb.io:v:q  '), [
      { host: 'a.io', username: 'u', password: 'p' },
      { host: 'b.io', username: 'v', password: 'q' },
    ]);
  });

  test("GitLab's separate auth domain is just another host", () => {
    assert.deepEqual(parseAuthRegistries('git.example.com:USER:PASSWORD'), [
      { host: 'git.example.com', username: 'USER', password: 'PASSWORD' },
    ]);
  });

  test('GCR _json_key with a JSON key full of spaces, colons and newlines, with ;;; and :::', () => {
    const value = `gcr.io:::_json_key:::${GCR_KEY};;;auth.docker.io:::dockerhub_username:::dockerhub_password`;
    const parsed = parseAuthRegistries(value, { entryDelimiter: ';;;', fieldDelimiter: ':::' });
    assert.equal(parsed.length, 2);
    assert.equal(parsed[0]?.host, 'gcr.io');
    assert.equal(parsed[0]?.username, '_json_key');
    assert.equal(parsed[0]?.password, GCR_KEY);
    assert.deepEqual(JSON.parse(parsed[0]?.password ?? ''), JSON.parse(GCR_KEY));
    assert.deepEqual(parsed[1], {
      host: 'auth.docker.io',
      username: 'dockerhub_username',
      password: 'dockerhub_password',
    });
  });

  test('the README example with ":::" fields and the default space between entries', () => {
    assert.deepEqual(
      parseAuthRegistries('registry1.com:::user1:::pass1 registry2.com:::user2:::pass2', {
        fieldDelimiter: ':::',
      }),
      [
        { host: 'registry1.com', username: 'user1', password: 'pass1' },
        { host: 'registry2.com', username: 'user2', password: 'pass2' },
      ],
    );
  });

  test('hosts with a port, and host names lower-cased', () => {
    assert.deepEqual(parseAuthRegistries('Registry.Local:5000;u;p', { fieldDelimiter: ';' }), [
      { host: 'registry.local:5000', username: 'u', password: 'p' },
    ]);
  });

  test('a password containing the field delimiter is rejected, never cut', () => {
    const message = rejects(
      'ok.io:u:p registry.example.com:user:pa:ss',
      /entry 2 \(host registry\.example\.com\) has 4 field/,
    );
    assert.match(message, /AUTH_REGISTRY_DELIMITER/);
    assert.doesNotMatch(message, /pa:ss|\bss\b|user:/);
  });

  test('a password with a space under the default delimiter is rejected without showing it', () => {
    const message = rejects('registry.example.com:user:secret words', /entry 2 has 1 field/);
    assert.match(message, /AUTH_REGISTRIES_DELIMITER/);
    assert.doesNotMatch(message, /secret|words/);
  });

  test('missing and empty fields', () => {
    rejects('registry.example.com:user', /entry 1 has 2 field/);
    rejects('registry.example.com::s3cret', /entry 1 \(host registry\.example\.com\) has an empty user name/);
    rejects('registry.example.com:user:', /entry 1 \(host registry\.example\.com\) has an empty password/);
    rejects(':user:s3cret', /entry 1 has an empty host/);
    const bad = rejects('not a host!:user:s3cret', /entry/, { entryDelimiter: ';;;' });
    assert.doesNotMatch(bad, /s3cret|user/);
  });

  test('a JSON key under the default delimiters is rejected without printing any of it', () => {
    // The first entry splits into `gcr.io`, `_json_key` and `{`; the rest of the key fails.
    const message = rejects(`gcr.io:_json_key:${GCR_KEY}`, /entry 2 has/);
    for (const secret of ['PRIVATE', 'puller', 'my-project', 'service_account', '_json_key']) {
      assert.ok(!message.includes(secret), `message leaks ${secret}: ${message}`);
    }
  });

  test('the same host twice, and bad delimiters', () => {
    rejects('a.io:u:p A.io:v:q', /entry 2 \(host A\.io\) repeats the host of entry 1/);
    rejects('a.io:u:p', /must differ/, { entryDelimiter: ':', fieldDelimiter: ':' });
    rejects('a.io:u:p', /must not be empty/, { fieldDelimiter: '' });
    rejects('a.io:u:p', /must not be empty/, { entryDelimiter: '' });
  });

  test('parsed credentials are valid options', () => {
    const credentials = parseAuthRegistries('auth.docker.io:u:p');
    const options = resolveOptions({ cacheDir: '/tmp/x', credentials });
    assert.equal(options.credentials.get('auth.docker.io')?.username, 'u');
  });
});

describe('the injection rule', () => {
  const credentials = new Credentials(
    resolveOptions({
      cacheDir: '/tmp/x',
      credentials: [
        { host: 'auth.docker.io', username: 'hub', password: 'hubpass' },
        { host: 'registry.local:5000', username: 'me', password: 'pw' },
      ],
    }).credentials,
  );

  test('a client without Authorization gets the configured Basic credentials for the host', () => {
    const headers = credentials.apply(
      { target: { host: 'auth.docker.io', port: 443 }, inject: true },
      { accept: '*/*' },
    );
    assert.equal(headers.authorization, `Basic ${Buffer.from('hub:hubpass').toString('base64')}`);
    assert.equal(headers.accept, '*/*');
  });

  test('a client with its own Authorization keeps it', () => {
    const own = { authorization: 'Bearer client-token' };
    assert.equal(
      credentials.apply({ target: { host: 'auth.docker.io', port: 443 }, inject: true }, own).authorization,
      'Bearer client-token',
    );
  });

  test('hosts without credentials, and ports, are matched exactly', () => {
    assert.equal(
      credentials.apply({ target: { host: 'registry-1.docker.io', port: 443 }, inject: true }, {})
        .authorization,
      undefined,
    );
    assert.match(
      String(
        credentials.apply({ target: { host: 'registry.local', port: 5000 }, inject: true }, {}).authorization,
      ),
      /^Basic /,
    );
    assert.equal(
      credentials.apply({ target: { host: 'registry.local', port: 443 }, inject: true }, {}).authorization,
      undefined,
    );
  });

  test('a request that may not carry them (a write, a push-scope token) never gets them', () => {
    const scope = { target: { host: 'auth.docker.io', port: 443 }, inject: false };
    assert.equal(credentials.apply(scope, {}).authorization, undefined);
    assert.equal(credentials.has(scope), false);
  });

  test('only token requests whose every scope is pull are reads', () => {
    assert.equal(isPullOnlyTokenQuery('service=x&scope=repository:library/alpine:pull'), true);
    assert.equal(isPullOnlyTokenQuery('scope=repository:a/b:pull&scope=repository(plugin):c:pull'), true);
    assert.equal(isPullOnlyTokenQuery('scope=repository:a/b:pull%20repository:c/d:pull'), true);
    assert.equal(isPullOnlyTokenQuery('scope=repository:a/b:pull,push'), false);
    assert.equal(isPullOnlyTokenQuery('scope=repository:a/b:pull+repository:c/d:push'), false);
    assert.equal(isPullOnlyTokenQuery('scope=repository:a/b:*'), false);
    assert.equal(isPullOnlyTokenQuery('scope=repository:a/b:delete'), false);
    assert.equal(isPullOnlyTokenQuery('scope=registry:catalog:*'), false);
    assert.equal(isPullOnlyTokenQuery('service=x'), false);
    assert.equal(isPullOnlyTokenQuery(undefined), false);
  });
});

describe('auth classes', () => {
  let dir: string;
  let now = 0;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'drp-auth-class-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('anonymous, injected, per-user Basic and unknown tokens', () => {
    const auth = new AuthClassifier(join(dir, 'key'), () => now);
    assert.equal(auth.classify(undefined, false), 'anonymous');
    assert.equal(auth.classify(undefined, true), 'injected');
    const alice = auth.classify(`Basic ${Buffer.from('alice:pw').toString('base64')}`, false);
    const bob = auth.classify(`Basic ${Buffer.from('bob:pw').toString('base64')}`, false);
    assert.match(alice, /^basic:[0-9a-f]{32}$/);
    assert.notEqual(alice, bob);
    assert.match(auth.classify('Bearer abc', false), /^bearer:/);
    assert.notEqual(auth.classify('Bearer abc', false), auth.classify('Bearer abd', false));
    // A request's class: its own Authorization wins; without one, injectable means injected.
    const basic = `Basic ${Buffer.from('alice:pw').toString('base64')}`;
    assert.equal(auth.classifyRequest({ authorization: basic }, true), alice);
    assert.equal(auth.classifyRequest({}, true), 'injected');
    assert.equal(auth.classifyRequest({}, false), 'anonymous');
    // Never the credential itself.
    assert.ok(!alice.includes(Buffer.from('alice:pw').toString('base64')));
    assert.equal(statSync(join(dir, 'key')).mode & 0o777, 0o600);
  });

  test('a token is classed by the request that obtained it, until it expires', () => {
    const auth = new AuthClassifier(join(dir, 'key'), () => now);
    auth.noteChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io"');
    assert.equal(auth.isTokenRequest({ host: 'auth.docker.io', port: 443 }, '/token'), true);
    assert.equal(auth.isTokenRequest({ host: 'auth.docker.io', port: 443 }, '/other'), false);
    assert.equal(auth.isTokenRequest({ host: 'evil.example', port: 443 }, '/token'), false);
    auth.noteToken('tok-anon', 'anonymous', 300);
    auth.noteToken('tok-injected', 'injected', 300);
    assert.equal(auth.classify('Bearer tok-anon', false), 'anonymous');
    assert.equal(auth.classify('Bearer tok-injected', false), 'injected');
    now += 361_000;
    assert.match(auth.classify('Bearer tok-anon', false), /^bearer:/);
  });

  test('the MAC key survives a restart, so classes do too', () => {
    const a = new AuthClassifier(join(dir, 'key2'), () => now);
    const b = new AuthClassifier(join(dir, 'key2'), () => now);
    assert.equal(a.classify('Basic eDp5', false), b.classify('Basic eDp5', false));
  });
});

describe('a shared cache and private manifests', () => {
  let upstream: FakeRegistry;
  let proxy: Driven;
  const alice = `Basic ${Buffer.from('alice:wonderland').toString('base64')}`;

  before(async () => {
    upstream = await startFakeRegistry();
    proxy = await drive({ target: upstream.target, manifestCache: { enabled: true } });
  });
  after(async () => {
    await proxy.close();
    await upstream.close();
  });
  beforeEach(() => {
    upstream.log.length = 0;
  });

  test("one client's privately fetched tag is not served to a client without credentials", async () => {
    upstream.basicAuth = { username: 'alice', password: 'wonderland' };
    const digest = upstream.setManifest('private/app', 'latest', manifestBody(OCI_MANIFEST, 'private'));
    const own = await proxy.send('GET', '/v2/private/app/manifests/latest', { authorization: alice });
    assert.equal(own.status, 200);
    assert.equal(upstream.log[0]?.headers.authorization, alice, 'the client keeps its own credentials');
    const hit = await proxy.send('GET', '/v2/private/app/manifests/latest', { authorization: alice });
    assert.equal(hit.headers['x-docker-registry-proxy-cache-upstream-status'], 'HIT');

    const stranger = await proxy.send('GET', '/v2/private/app/manifests/latest');
    assert.equal(stranger.status, 401);
    const byDigest = await proxy.send('GET', `/v2/private/app/manifests/${digest}`);
    assert.equal(
      byDigest.status,
      401,
      'a stored manifest by digest needs upstream consent for another class',
    );
    const byDigestOwn = await proxy.send('GET', `/v2/private/app/manifests/${digest}`, {
      authorization: alice,
    });
    assert.equal(byDigestOwn.status, 200);
    assert.equal(byDigestOwn.headers['x-docker-registry-proxy-cache-upstream-status'], 'HIT');
  });

  test('public manifests fetched anonymously are shared with everyone', async () => {
    upstream.basicAuth = undefined;
    const digest = upstream.setManifest('public/app', 'latest', manifestBody(OCI_MANIFEST, 'public'));
    await proxy.send('GET', '/v2/public/app/manifests/latest');
    const other = await proxy.send('GET', `/v2/public/app/manifests/${digest}`, { authorization: alice });
    assert.equal(other.headers['x-docker-registry-proxy-cache-upstream-status'], 'HIT');
    assert.equal(upstream.log.length, 1);
  });
});

describe('injected credentials end to end', () => {
  test('a client without credentials pulls with the configured ones; its own are kept', async () => {
    const upstream = await startFakeRegistry();
    upstream.basicAuth = { username: 'svc', password: 'p:a:s:s w0rd' };
    const proxy = await drive({
      target: upstream.target,
      credentials: [{ host: `127.0.0.1:${upstream.port}`, username: 'svc', password: 'p:a:s:s w0rd' }],
    });
    try {
      upstream.setManifest('private/app', 'v1', manifestBody(OCI_MANIFEST, 'inj'));
      const res = await proxy.send('GET', '/v2/private/app/manifests/v1');
      assert.equal(res.status, 200);
      const wrong = `Basic ${Buffer.from('svc:wrong').toString('base64')}`;
      const own = await proxy.send('GET', '/v2/private/app/manifests/v1', { authorization: wrong });
      assert.equal(own.status, 401, "the client's own (wrong) credentials are forwarded, not replaced");
      assert.equal(upstream.log.at(-1)?.headers.authorization, wrong);
      // Nothing in the access log carries credentials.
      const logged = JSON.stringify(proxy.outcomes);
      assert.ok(
        !logged.includes('w0rd') && !logged.includes(Buffer.from('svc:p:a:s:s w0rd').toString('base64')),
      );
    } finally {
      await proxy.close();
      await upstream.close();
    }
  });
});
