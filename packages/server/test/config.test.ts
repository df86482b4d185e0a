import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createAddressResolver } from '@drp/core';
import { ConfigError, DEFAULTS, isIntercepted, loadConfig, parseFlags } from '../src/config.ts';
import { cacheOptionsFrom } from '../src/proxy.ts';

const cwd = '/work/x';
const load = (env: Record<string, string> = {}, extra: Parameters<typeof loadConfig>[0] = {}) =>
  loadConfig({ env, cwd, inContainer: false, ...extra });

function rejects(env: Record<string, string>, message: RegExp) {
  assert.throws(
    () => load(env),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError, String(e));
      assert.match(e.message, message);
      return true;
    },
  );
}

describe('defaults', () => {
  it("match the original's for its variables", () => {
    const c = load();
    assert.equal(c.port, 3128);
    assert.equal(c.bind, '::');
    assert.deepEqual(
      c.registries.map((r) => r.host),
      ['registry.k8s.io', 'gcr.io', 'quay.io', 'ghcr.io', 'registry-1.docker.io', 'auth.docker.io'],
    );
    assert.equal(c.manifestCache.enabled, false);
    assert.equal(c.manifestCache.primaryRegex, '(stable|nightly|production|test)');
    assert.equal(c.manifestCache.primaryTime, '10m');
    assert.equal(c.manifestCache.secondaryTime, '60d');
    assert.equal(c.manifestCache.defaultTime, '1h');
    assert.equal(c.maxSize, '32g');
    assert.equal(c.inactive, '60d');
    assert.equal(c.allowPush, false);
    assert.equal(c.verifyTls, true);
    assert.deepEqual(c.credentials, []);
    assert.equal(c.timeouts.sendMs, 60_000);
    assert.equal(c.timeouts.keepAliveMs, 300_000);
    assert.equal(c.timeouts.proxyConnectMs, 60_000);
    assert.equal(c.timeouts.tunnelIdleMs, 60_000);
    assert.equal(c.logFormat, 'json');
    assert.equal(c.debugNamespaces, undefined);
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.timeouts) && Object.isFrozen(DEFAULTS));
  });

  it('put cache and CA under ./.drp on a laptop and in the volumes in the container', () => {
    const laptop = load();
    assert.equal(laptop.cacheDir, '/work/x/.drp/cache');
    assert.equal(laptop.caDir, '/work/x/.drp/ca');
    const container = load({}, { inContainer: true });
    assert.equal(container.cacheDir, '/docker_mirror_cache');
    assert.equal(container.caDir, '/ca');
    const explicit = load({ CACHE_DIR: 'c', CA_DIR: '/abs/ca' });
    assert.equal(explicit.cacheDir, '/work/x/c');
    assert.equal(explicit.caDir, '/abs/ca');
  });

  it('treat an empty variable as unset, except for lists where empty means none', () => {
    const c = load({ PORT: '', CACHE_MAX_SIZE: ' ', REGISTRIES: '' });
    assert.equal(c.port, 3128);
    assert.equal(c.maxSize, '32g');
    assert.deepEqual(
      c.registries.map((r) => r.host),
      ['registry-1.docker.io', 'auth.docker.io'],
    );
  });
});

describe('REGISTRIES', () => {
  it('accepts host, host:port and host:* and always adds Docker Hub', () => {
    const c = load({ REGISTRIES: 'Quay.io  registry.local:5000\tmirror.test:*' });
    assert.deepEqual(c.registries.slice(0, 3), [
      { host: 'quay.io', port: undefined },
      { host: 'registry.local', port: 5000 },
      { host: 'mirror.test', port: '*' },
    ]);
    assert.ok(isIntercepted(c.registries, 'quay.io', 443));
    assert.ok(!isIntercepted(c.registries, 'quay.io', 8443));
    assert.ok(isIntercepted(c.registries, 'registry.local', 5000));
    assert.ok(!isIntercepted(c.registries, 'registry.local', 443));
    assert.ok(isIntercepted(c.registries, 'mirror.test', 1234));
    assert.ok(isIntercepted(c.registries, 'registry-1.docker.io', 443));
    assert.ok(isIntercepted(c.registries, 'REGISTRY-1.docker.io.', 443));
    assert.ok(!isIntercepted(c.registries, 'example.com', 443));
    // Plain HTTP (absolute-form) requests: a bare host means port 80 there.
    assert.ok(isIntercepted(c.registries, 'quay.io', 80, 'http'));
  });

  it('accepts IPv6 literals in brackets', () => {
    const c = load({ REGISTRIES: '[fd00::5]:5000' });
    assert.ok(isIntercepted(c.registries, 'fd00::5', 5000));
  });

  it('refuses URLs and garbage', () => {
    rejects(
      { REGISTRIES: 'https://ghcr.io' },
      /^invalid REGISTRIES: expected host names .*got "https:\/\/ghcr.io"/,
    );
    rejects({ REGISTRIES: 'ghcr.io/foo' }, /invalid REGISTRIES/);
    rejects({ REGISTRIES: 'host:99999' }, /invalid REGISTRIES/);
  });

  it('accepts commas as well as spaces between entries', () => {
    const c = load({ REGISTRIES: 'ghcr.io,quay.io, registry.local:5000 ,,' });
    assert.deepEqual(c.registries.slice(0, 3), [
      { host: 'ghcr.io', port: undefined },
      { host: 'quay.io', port: undefined },
      { host: 'registry.local', port: 5000 },
    ]);
    assert.ok(isIntercepted(c.registries, 'ghcr.io', 443));
    assert.ok(isIntercepted(c.registries, 'quay.io', 443));
  });

  it('intercepts every host under a domain for *.domain, with the usual port forms', () => {
    const c = load({ REGISTRIES: '*.Example.com *.corp.test:5000 *.any.test:*' });
    assert.deepEqual(c.registries.slice(0, 3), [
      { host: '*.example.com', port: undefined },
      { host: '*.corp.test', port: 5000 },
      { host: '*.any.test', port: '*' },
    ]);
    assert.ok(isIntercepted(c.registries, 'registry.example.com', 443));
    assert.ok(isIntercepted(c.registries, 'a.b.example.com.', 443));
    assert.ok(!isIntercepted(c.registries, 'example.com', 443), 'the domain itself is not under it');
    assert.ok(!isIntercepted(c.registries, 'badexample.com', 443));
    assert.ok(!isIntercepted(c.registries, 'registry.example.com', 8443));
    assert.ok(isIntercepted(c.registries, 'r.corp.test', 5000));
    assert.ok(!isIntercepted(c.registries, 'r.corp.test', 443));
    assert.ok(isIntercepted(c.registries, 'r.any.test', 1234));
  });

  it('refuses a * anywhere but a leading *. or a :* port', () => {
    for (const bad of ['*', '*example.com', 'registry.*.com', '*.', '*.*.com', '*.[fd00::5]', 'ghcr.io:5*']) {
      rejects(
        { REGISTRIES: `ghcr.io ${bad}` },
        /^invalid REGISTRIES: expected host names separated by spaces or commas/,
      );
    }
  });
});

describe('values', () => {
  it('parse booleans the original way and a few more', () => {
    assert.equal(load({ ALLOW_PUSH: 'true' }).allowPush, true);
    assert.equal(load({ ALLOW_PUSH: 'TRUE' }).allowPush, true);
    assert.equal(load({ ALLOW_PUSH: '1' }).allowPush, true);
    assert.equal(load({ VERIFY_SSL: 'false' }).verifyTls, false);
    rejects({ ALLOW_PUSH: 'yes please' }, /^invalid ALLOW_PUSH: expected true or false, got "yes please"$/);
  });

  it('VERIFY_BLOB_ACCESS is private by default and reaches the cache options', () => {
    assert.equal(load({}).verifyBlobAccess, 'private');
    assert.equal(cacheOptionsFrom(load({}), []).verifyBlobAccess, 'private');
    assert.equal(load({ VERIFY_BLOB_ACCESS: 'true' }).verifyBlobAccess, 'all');
    assert.equal(load({ VERIFY_BLOB_ACCESS: 'false' }).verifyBlobAccess, 'off');
    const all = load({ VERIFY_BLOB_ACCESS: 'all' });
    assert.equal(cacheOptionsFrom(all, []).verifyBlobAccess, 'all');
    assert.equal(load({ VERIFY_BLOB_ACCESS: 'OFF' }).verifyBlobAccess, 'off');
    rejects({ VERIFY_BLOB_ACCESS: 'sometimes' }, /^invalid VERIFY_BLOB_ACCESS: expected private, all or off/);
  });

  it('parse nginx durations and sizes', () => {
    const c = load({
      SEND_TIMEOUT: '90',
      KEEPALIVE_TIMEOUT: '1m30s',
      CACHE_MAX_SIZE: '512m',
      CACHE_INACTIVE: '7d',
    });
    assert.equal(c.timeouts.sendMs, 90_000);
    assert.equal(c.timeouts.keepAliveMs, 90_000);
    assert.equal(c.maxSize, '512m');
    rejects({ PROXY_READ_TIMEOUT: '5 minutes' }, /^invalid PROXY_READ_TIMEOUT: expected a duration/);
    rejects({ CACHE_MAX_SIZE: '32 gigs' }, /^invalid CACHE_MAX_SIZE: expected a size/);
    rejects({ MANIFEST_CACHE_PRIMARY_TIME: 'x' }, /^invalid MANIFEST_CACHE_PRIMARY_TIME/);
  });

  it('check regexes, ports and addresses', () => {
    rejects(
      { MANIFEST_CACHE_PRIMARY_REGEX: '(unclosed' },
      /invalid MANIFEST_CACHE_PRIMARY_REGEX: expected a valid regular/,
    );
    rejects({ PORT: '-1' }, /invalid PORT: expected a port number from 0 to 65535, got "-1"/);
    assert.equal(load({ PORT: '0' }).port, 0);
    assert.equal(load({ BIND: '[::1]' }).bind, '::1');
    rejects({ BIND: 'everywhere' }, /invalid BIND: expected an IP address/);
  });

  it('DISABLE_IPV6 listens on IPv4 unless BIND says otherwise', () => {
    assert.equal(load({ DISABLE_IPV6: 'true' }).bind, '0.0.0.0');
    assert.equal(load({ DISABLE_IPV6: 'true', BIND: '127.0.0.1' }).bind, '127.0.0.1');
    assert.equal(load({ DISABLE_IPV6: 'true' }).disableIpv6, true);
  });

  it('maps DEBUG switches onto debug namespaces', () => {
    assert.equal(load({ DEBUG: 'true' }).debugNamespaces, 'drp:*');
    assert.equal(load({ DEBUG: 'false' }).debugNamespaces, undefined);
    assert.equal(load({ DEBUG: 'drp:mitm,drp:ca' }).debugNamespaces, 'drp:mitm,drp:ca');
    assert.equal(load({ DEBUG_NGINX: 'true' }).debugNamespaces, 'drp:*');
    rejects({ DEBUG: 'rm -rf $(x)' }, /invalid DEBUG/);
  });

  it('reads UPSTREAM_MAPPINGS and checks UPSTREAM_CA_FILE exists', () => {
    const c = load({ UPSTREAM_MAPPINGS: 'registry.test=127.0.0.1 hub.local:443=[::1]:8443' });
    assert.deepEqual(c.upstreamMappings, { 'registry.test': '127.0.0.1', 'hub.local:443': '[::1]:8443' });
    rejects({ UPSTREAM_MAPPINGS: 'a=b=c' }, /invalid UPSTREAM_MAPPINGS/);
    rejects({ UPSTREAM_CA_FILE: '/nonexistent.pem' }, /invalid UPSTREAM_CA_FILE: expected a readable file/);
    const dir = mkdtempSync(join(tmpdir(), 'drp-config-'));
    writeFileSync(join(dir, 'ca.pem'), 'x');
    assert.equal(load({ UPSTREAM_CA_FILE: join(dir, 'ca.pem') }).upstreamCaFile, join(dir, 'ca.pem'));
  });

  it('accepts the compatibility-only variables', () => {
    const c = load({ PROXY_REQUEST_BUFFERING: 'false', CA_SRL_FILE: '/ca/ca.srl' });
    assert.equal(c.compat.proxyRequestBuffering, false);
    assert.equal(c.compat.caSerialFile, '/ca/ca.srl');
  });

  it('uses CA_CRT_FILE + CA_KEY_FILE together or not at all', () => {
    const c = load({ CA_CRT_FILE: '/etc/ca/ca.crt', CA_KEY_FILE: '/etc/ca/ca.key' });
    assert.deepEqual(c.caFiles, { certFile: '/etc/ca/ca.crt', keyFile: '/etc/ca/ca.key' });
    assert.equal(load().caFiles, undefined);
    rejects(
      { CA_CRT_FILE: '/etc/ca/ca.crt' },
      /invalid CA_KEY_FILE: CA_CRT_FILE and CA_KEY_FILE must be set together/,
    );
  });
});

describe('AUTH_REGISTRIES', () => {
  it('splits entries and fields with the configurable delimiters', () => {
    assert.deepEqual(load({ AUTH_REGISTRIES: 'auth.docker.io:hubuser:hubpass ghcr.io:me:tok' }).credentials, [
      { host: 'auth.docker.io', username: 'hubuser', password: 'hubpass' },
      { host: 'ghcr.io', username: 'me', password: 'tok' },
    ]);
    const json = '{"type": "service_account", "key": "a:b"}';
    const c = load({
      AUTH_REGISTRIES: `gcr.io:::_json_key:::${json};;;quay.io:::u:::p`,
      AUTH_REGISTRIES_DELIMITER: ';;;',
      AUTH_REGISTRY_DELIMITER: ':::',
    });
    assert.deepEqual(c.credentials[0], { host: 'gcr.io', username: '_json_key', password: json });
    assert.equal(c.credentials[1]?.host, 'quay.io');
  });

  it('never echoes a secret in an error', () => {
    for (const value of ['ghcr.io:user:pass:word-SECRET', 'ghcr.io:SECRET', 'ghcr.io::SECRET']) {
      assert.throws(
        () => load({ AUTH_REGISTRIES: value }),
        (e: unknown) => {
          assert.ok(e instanceof ConfigError);
          assert.match(e.message, /^invalid AUTH_REGISTRIES: entry 1/);
          assert.doesNotMatch(e.message, /SECRET|pass:/);
          return true;
        },
      );
    }
  });
});

describe('flags', () => {
  it('win over the environment and are named in errors', () => {
    const args = parseFlags(['--port', '9000', '-r', 'a.test b.test', '--allow-push', 'true']);
    assert.equal(args.command, 'serve');
    const c = load({ PORT: '1234', REGISTRIES: 'x.test' }, { overrides: args.overrides });
    assert.equal(c.port, 9000);
    assert.equal(c.allowPush, true);
    assert.equal(c.registries[0]?.host, 'a.test');
    assert.throws(
      () => load({}, { overrides: parseFlags(['--port', 'http']).overrides }),
      /^ConfigError: invalid --port \(PORT\): expected a port number/,
    );
  });

  it('know the commands', () => {
    assert.equal(parseFlags(['--help']).command, 'help');
    assert.equal(parseFlags(['-v']).command, 'version');
    assert.deepEqual(
      [parseFlags(['ca', 'rotate']).command, parseFlags(['ca', 'rotate']).subcommand],
      ['ca', 'rotate'],
    );
    assert.throws(() => parseFlags(['--bogus']), ConfigError);
    assert.throws(() => parseFlags(['ca', 'burn']), /usage: drp-server ca print\|fingerprint\|rotate/);
    assert.throws(() => parseFlags(['serve', 'extra']), ConfigError);
  });
});

describe('address resolver (UPSTREAM_MAPPINGS for tunnels)', () => {
  it('maps every port of a bare host and one port of host:port', () => {
    const resolve = createAddressResolver({
      'registry.test': '127.0.0.1',
      'hub.local:443': '10.0.0.5:8443',
      'moved.test': '10.0.0.6:5000',
    });
    assert.deepEqual(resolve('registry.test', 5000), { host: '127.0.0.1', port: 5000 });
    assert.deepEqual(resolve('hub.local', 443), { host: '10.0.0.5', port: 8443 });
    assert.deepEqual(resolve('hub.local', 80), { host: 'hub.local', port: 80 });
    assert.deepEqual(resolve('moved.test', 443), { host: '10.0.0.6', port: 5000 });
    assert.deepEqual(resolve('other.test', 443), { host: 'other.test', port: 443 });
  });
});

describe('UPSTREAM_PROXY, UPSTREAM_NO_PROXY and mirror mode', () => {
  it('reads them, passes the proxy to core, and never echoes the proxy URL (it may hold a password)', () => {
    const c = load({
      UPSTREAM_PROXY: 'http://u:SECRET@proxy.corp:3128',
      UPSTREAM_NO_PROXY: '.corp,10.0.0.0/8',
    });
    assert.equal(c.upstreamProxy, 'http://u:SECRET@proxy.corp:3128');
    const upstream = cacheOptionsFrom(c, []).upstream;
    assert.equal(upstream?.proxy, 'http://u:SECRET@proxy.corp:3128');
    assert.equal(upstream?.noProxy, '.corp,10.0.0.0/8');
    assert.equal(cacheOptionsFrom(load(), []).upstream?.proxy, undefined);
    for (const value of [
      'https://u:SECRET@proxy:3128',
      'u:SECRET@proxy:3128',
      'http://u:SECRET@proxy:3128/path',
    ]) {
      assert.throws(
        () => load({ UPSTREAM_PROXY: value }),
        (e: unknown) => {
          assert.ok(e instanceof ConfigError);
          assert.match(e.message, /^invalid UPSTREAM_PROXY: expected an http:/);
          assert.doesNotMatch(e.message, /SECRET/);
          return true;
        },
      );
    }
    rejects({ UPSTREAM_NO_PROXY: 'a.example,bad host' }, /invalid UPSTREAM_NO_PROXY/);
    rejects({ UPSTREAM_NO_PROXY: '10.0.0.0/40' }, /invalid UPSTREAM_NO_PROXY: expected a CIDR/);
  });

  it('MIRROR_DEFAULT_REGISTRY defaults to docker.io; MIRROR_TLS_PORT is off unless set', () => {
    assert.equal(load().mirrorDefaultRegistry, 'docker.io');
    assert.equal(load().mirrorTlsPort, undefined);
    assert.equal(
      load({ MIRROR_DEFAULT_REGISTRY: 'Registry.Test:5000' }).mirrorDefaultRegistry,
      'registry.test:5000',
    );
    assert.equal(load({ MIRROR_TLS_PORT: '5443' }).mirrorTlsPort, 5443);
    rejects({ MIRROR_DEFAULT_REGISTRY: 'https://ghcr.io' }, /invalid MIRROR_DEFAULT_REGISTRY/);
    rejects({ MIRROR_TLS_PORT: 'x' }, /invalid MIRROR_TLS_PORT/);
  });
});
