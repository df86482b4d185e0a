// The upstream proxy's address and curl's NO_PROXY rules (squid itself is in test/e2e).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseNoProxy, parseUpstreamProxy, proxyError } from '../src/upstream/proxy.ts';

function rules(value: string) {
  const parsed = parseNoProxy(value);
  assert.ok(typeof parsed !== 'string', String(parsed));
  return parsed;
}

test('UPSTREAM_PROXY: http only, credentials kept for CONNECT but never shown', () => {
  const proxy = parseUpstreamProxy('http://user:p%40ss@proxy.corp:3128');
  assert.ok(typeof proxy !== 'string');
  assert.equal(proxy.display, 'http://proxy.corp:3128');
  assert.equal(proxy.url.username, 'user');
  const noPort = parseUpstreamProxy('http://proxy.corp');
  assert.ok(typeof noPort !== 'string');
  assert.equal(noPort.display, 'http://proxy.corp:80');
  for (const bad of ['https://proxy:3128', 'proxy:3128', 'http://proxy:3128/x', 'socks5://proxy:1080', '']) {
    assert.equal(typeof parseUpstreamProxy(bad), 'string', bad);
  }
});

test("NO_PROXY: curl's rules", () => {
  const r = rules(
    ' registry.test, .corp.example,*.internal.example,ghcr.io:8443, 10.0.0.0/8,fd00::/8,192.168.1.5 ',
  );
  // A bare host: itself and its subdomains, any port.
  assert.ok(r.bypasses('registry.test', 443));
  assert.ok(r.bypasses('registry.test', 5000));
  assert.ok(r.bypasses('mirror.registry.test', 443));
  assert.ok(!r.bypasses('otherregistry.test', 443));
  // Leading '.' or '*.': subdomains.
  assert.ok(r.bypasses('a.corp.example', 443));
  assert.ok(r.bypasses('b.a.internal.example', 443));
  assert.ok(!r.bypasses('corp.example.com', 443));
  // host:port only for that port.
  assert.ok(r.bypasses('ghcr.io', 8443));
  assert.ok(!r.bypasses('ghcr.io', 443));
  // CIDRs and addresses match IP literals only.
  assert.ok(r.bypasses('10.1.2.3', 443));
  assert.ok(r.bypasses('[fd00::1]', 443));
  assert.ok(r.bypasses('192.168.1.5', 80));
  assert.ok(!r.bypasses('192.168.1.6', 80));
  assert.ok(!r.bypasses('11.0.0.1', 443));
  // Case and a trailing dot do not matter.
  assert.ok(r.bypasses('Registry.Test.', 443));
  assert.ok(rules('*').bypasses('anything.example', 1));
  assert.ok(!rules('').bypasses('registry.test', 443));
  for (const bad of ['bad host', '10.0.0.0/33', 'a/b', 'http://x']) {
    assert.equal(typeof parseNoProxy(bad), 'string', bad);
  }
});

test('errors of the CONNECT stage name the proxy and the target, never the password', () => {
  const proxy = parseUpstreamProxy('http://user:SECRET@proxy.corp:3128');
  assert.ok(typeof proxy !== 'string');
  const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
  const cases: [Error, RegExp][] = [
    [
      new Error('Bad response: 407'),
      /^upstream proxy http:\/\/proxy\.corp:3128 rejected the credentials in its URL \(407/,
    ],
    [new Error('Bad response: 403'), /refused CONNECT registry\.test:443 with 403$/],
    [new Error('Proxy timeout'), /did not answer CONNECT registry\.test:443 in time$/],
    [refused, /unreachable: ECONNREFUSED$/],
  ];
  for (const [cause, pattern] of cases) {
    const error = proxyError(proxy, 'registry.test:443', cause);
    assert.match(error.message, pattern);
    assert.doesNotMatch(error.message, /SECRET|user/);
    assert.equal((error as { code?: string }).code, 'DRP_UPSTREAM_PROXY');
  }
});
