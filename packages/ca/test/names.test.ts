import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CaError, parseLeafName } from '../src/index.ts';

describe('parseLeafName', () => {
  it('canonicalises DNS names: case, trailing dot, IDN to punycode', () => {
    assert.deepEqual(parseLeafName('Registry-1.Docker.IO.'), { name: 'registry-1.docker.io', kind: 'dns' });
    assert.deepEqual(parseLeafName('bücher.example'), { name: 'xn--bcher-kva.example', kind: 'dns' });
    assert.deepEqual(parseLeafName('localhost'), { name: 'localhost', kind: 'dns' });
    assert.deepEqual(parseLeafName('*.example.com'), { name: '*.example.com', kind: 'dns' });
    assert.deepEqual(parseLeafName('my_host.internal'), { name: 'my_host.internal', kind: 'dns' });
  });

  it('recognises IPv4 and IPv6 literals, bracketed or not, in canonical form', () => {
    assert.deepEqual(parseLeafName('127.0.0.1'), { name: '127.0.0.1', kind: 'ip' });
    assert.deepEqual(parseLeafName('[::1]'), { name: '::1', kind: 'ip' });
    assert.deepEqual(parseLeafName('2001:DB8:0:0:0:0:0:1'), { name: '2001:db8::1', kind: 'ip' });
    assert.deepEqual(parseLeafName('[::ffff:10.0.0.1]'), { name: '::ffff:a00:1', kind: 'ip' });
  });

  for (const bad of [
    '',
    ' ',
    ' registry.example',
    'registry.example\n',
    'registry.example:443',
    'https://registry.example',
    'a/b',
    'two words',
    '-leading.example',
    'trailing-.example',
    'double..dot',
    '1.2.3',
    '256.1.1.1',
    '*.com',
    'a.*.example',
    'fe80::1%eth0',
    '[::1',
    `${'x'.repeat(64)}.example`,
    `${'a.'.repeat(130)}example`,
    'nul\u0000.example',
  ]) {
    it(`refuses ${JSON.stringify(bad.slice(0, 40))} with CA_INVALID_NAME`, () => {
      assert.throws(
        () => parseLeafName(bad),
        (err: unknown) => err instanceof CaError && err.code === 'CA_INVALID_NAME',
      );
    });
  }

  it('refuses non-strings', () => {
    assert.throws(() => parseLeafName(42 as unknown as string), { code: 'CA_INVALID_NAME' });
  });
});
