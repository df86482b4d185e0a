import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { lookupMapping, MappingError, parseMappingList, parseMappings, resolveOptions } from '@drp/core';
import { ConfigError, loadConfig } from '../src/config.ts';

describe('upstream mappings: one set of rules for core, tunnels and config', () => {
  it('host:port wins over host, and a bare host keeps the port asked for', () => {
    const { table, names } = parseMappings({
      'Reg.Test': '127.0.0.1',
      'reg.test:5000': '127.0.0.2:6000',
      '[fd00::5]:443': '[::1]',
    });
    assert.deepEqual(lookupMapping(table, 'reg.test', 5000), { host: '127.0.0.2', port: 6000 });
    assert.deepEqual(lookupMapping(table, 'REG.TEST', 443), { host: '127.0.0.1', port: 443 });
    assert.deepEqual(lookupMapping(table, '[fd00::5]', 443), { host: '::1', port: 443 });
    assert.equal(lookupMapping(table, 'other.test', 443), undefined);
    assert.deepEqual(names, ['reg.test', 'reg.test:5000', '[fd00::5]:443']);
  });

  it('parses the variable form and names the bad side', () => {
    assert.deepEqual(parseMappingList(' a.test=127.0.0.1  b.test:5000=127.0.0.2:5001 '), {
      'a.test': '127.0.0.1',
      'b.test:5000': '127.0.0.2:5001',
    });
    assert.throws(() => parseMappingList('a.test'), MappingError);
    assert.throws(
      () => parseMappings({ 'a.test': 'http://x' }),
      (e: unknown) => e instanceof MappingError && e.side === 'to',
    );
  });

  it('gives the same verdicts in core options and daemon config', () => {
    assert.throws(
      () => resolveOptions({ cacheDir: '/tmp/x', upstream: { mappings: { 'a/b': '127.0.0.1' } } }),
      (e: unknown) => (e as { code?: string }).code === 'DRP_CONFIG_INVALID',
    );
    assert.throws(
      () => loadConfig({ env: { UPSTREAM_MAPPINGS: 'a/b=127.0.0.1' }, cwd: '/tmp', inContainer: false }),
      (e: unknown) => e instanceof ConfigError && e.code === 'DRP_SERVER_CONFIG_INVALID',
    );
  });
});
