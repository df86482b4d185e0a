// ALLOWED_CLIENTS, PROXY_AUTH(_FILE), TUNNEL_PORTS and BLOCKED_DESTINATIONS: parsed once at start,
// refused with a message naming the variable, never echoing a password.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../src/config.ts';
import { blockedDestinationsFor, exemptNames, tunnelPortsFor } from '../src/front/egress.ts';
import { cacheOptionsFrom } from '../src/proxy.ts';

const load = (env: Record<string, string> = {}) => loadConfig({ env, cwd: '/work/x', inContainer: false });

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

describe('admission and egress variables', () => {
  it('default to private ranges, port 443 and the loopback/link-local/metadata ranges', () => {
    const c = load();
    assert.deepEqual(c.allowedClients, [
      '127.0.0.0/8',
      '::1/128',
      '10.0.0.0/8',
      '172.16.0.0/12',
      '192.168.0.0/16',
      'fc00::/7',
      'fe80::/10',
    ]);
    assert.deepEqual(c.proxyUsers, []);
    assert.deepEqual(c.tunnelPorts, [443]);
    assert.ok(c.blockedDestinations.includes('169.254.0.0/16'));
    assert.equal(c.blockOwnAddresses, true);
  });

  it('accept comma and space separated lists, all, * and an empty BLOCKED_DESTINATIONS', () => {
    const c = load({
      ALLOWED_CLIENTS: '10.1.2.3 , 2001:db8::/32',
      TUNNEL_PORTS: '443, 8443 5000',
      BLOCKED_DESTINATIONS: '',
    });
    assert.deepEqual(c.allowedClients, ['10.1.2.3/32', '2001:db8::/32']);
    assert.deepEqual(c.tunnelPorts, [443, 8443, 5000]);
    assert.deepEqual(c.blockedDestinations, []);
    assert.equal(c.blockOwnAddresses, false);
    assert.equal(load({ ALLOWED_CLIENTS: 'all', TUNNEL_PORTS: '*' }).allowedClients, 'all');
    assert.equal(load({ TUNNEL_PORTS: '*' }).tunnelPorts, '*');
  });

  it('refuse bad values naming the variable', () => {
    rejects({ ALLOWED_CLIENTS: '10.0.0.0/33' }, /^invalid ALLOWED_CLIENTS: expected CIDR/);
    rejects({ ALLOWED_CLIENTS: ',' }, /^invalid ALLOWED_CLIENTS/);
    rejects({ TUNNEL_PORTS: '443 70000' }, /^invalid TUNNEL_PORTS: expected ports/);
    rejects({ TUNNEL_PORTS: '0' }, /^invalid TUNNEL_PORTS/);
    rejects({ BLOCKED_DESTINATIONS: 'metadata.internal' }, /^invalid BLOCKED_DESTINATIONS: expected CIDR/);
    rejects({ PROXY_AUTH: 'nopassword' }, /^invalid PROXY_AUTH: expected user:password/);
    rejects({ PROXY_AUTH_FILE: '/nonexistent/htpasswd' }, /^invalid PROXY_AUTH_FILE/);
  });

  it('never echo PROXY_AUTH', () => {
    assert.throws(
      () => load({ PROXY_AUTH: ':hunter2' }),
      (e: unknown) => e instanceof ConfigError && !e.message.includes('hunter2'),
    );
  });

  it('read bcrypt htpasswd entries and refuse any other scheme', () => {
    const dir = mkdtempSync(join(tmpdir(), 'drp-htpasswd-'));
    const good = join(dir, 'good');
    writeFileSync(good, 'alice:$2y$05$vltbrtQq5bWmwnVRlPsmCOeyxZUS9wzCjS9I/bBd924xBMFYxYi0q\n\n# comment\n');
    const c = load({ PROXY_AUTH_FILE: good, PROXY_AUTH: 'bob:pw' });
    assert.deepEqual(
      c.proxyUsers.map((u) => u.username),
      ['bob', 'alice'],
    );
    const md5 = join(dir, 'md5');
    writeFileSync(md5, 'alice:$apr1$abcdefgh$0123456789abcdefghijkl\n');
    rejects({ PROXY_AUTH_FILE: md5 }, /^invalid PROXY_AUTH_FILE .*line 1 is not a bcrypt entry/);
  });

  it('TUNNEL_PORTS adds the ports REGISTRIES names; registries and mapped names are exempt on their ports', () => {
    const c = load({
      REGISTRIES: 'a.test b.test:5000 c.test:*',
      UPSTREAM_MAPPINGS: 'b.test=127.0.0.1 d.test:8443=127.0.0.1:9443',
    });
    assert.deepEqual([...(tunnelPortsFor(c.tunnelPorts, c.registries) as Set<number>)].sort(), [443, 5000]);
    assert.deepEqual(exemptNames(c.registries, c.upstreamMappings), [
      'a.test:443',
      'a.test:80',
      'b.test:5000',
      'c.test:*',
      'registry-1.docker.io:443',
      'registry-1.docker.io:80',
      'auth.docker.io:443',
      'auth.docker.io:80',
      'b.test',
      'd.test:8443',
    ]);
  });

  it('block the proxy own address by default and pass the ranges to core', () => {
    const c = load({ BIND: '127.0.0.2' });
    assert.ok(blockedDestinationsFor(c).includes('127.0.0.2'));
    assert.deepEqual(cacheOptionsFrom(c, []).upstream?.blockedDestinations, blockedDestinationsFor(c));
    assert.ok(
      !blockedDestinationsFor(load({ BIND: '127.0.0.2', BLOCKED_DESTINATIONS: '' })).includes('127.0.0.2'),
    );
  });
});
