import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { DEFAULTS as CORE_DEFAULTS } from '@drp/core';
import { usage } from '../src/cli.ts';
import { DEFAULTS, FLAGS, loadConfig, VARIABLES } from '../src/config.ts';

const docs = readFileSync(new URL('../../../docs/configuration.md', import.meta.url), 'utf8')
  // Table cells escape `|`.
  .replaceAll('\\|', '|');
const help = usage();

describe('the variable table', () => {
  it('every variable, its default and its flag are in docs/configuration.md', () => {
    for (const [name, row] of Object.entries(VARIABLES)) {
      assert.ok(docs.includes(`\`${name}\``), `${name} is not in docs/configuration.md`);
      const value = row.default;
      if (value !== undefined && value.trim() !== '') {
        assert.ok(docs.includes(`\`${value}\``), `the default of ${name}, ${value}, is not in the docs`);
      }
    }
    for (const name of Object.keys(FLAGS)) {
      assert.ok(docs.includes(`\`--${name}\``), `--${name} is not in docs/configuration.md`);
    }
  });

  it('every variable, its default, its doc line and every flag are in --help', () => {
    for (const [name, row] of Object.entries(VARIABLES)) {
      assert.ok(help.includes(name), `${name} is not in --help`);
      assert.ok(help.includes(row.doc), `the doc line of ${name} is not in --help`);
      if (row.default)
        assert.ok(help.includes(`'${row.default}'`), `the default of ${name} is not in --help`);
    }
    for (const [name, flag] of Object.entries(FLAGS)) {
      assert.ok(help.includes(`--${name} <value>`), `--${name} is not in --help`);
      assert.ok(help.includes(flag.help));
    }
  });

  it('takes the defaults of cache options from core, not from a copy', () => {
    assert.equal(DEFAULTS.CACHE_MAX_SIZE, CORE_DEFAULTS.maxSize);
    assert.equal(DEFAULTS.CACHE_INACTIVE, CORE_DEFAULTS.inactive);
    assert.equal(DEFAULTS.MANIFEST_CACHE_SECONDARY_REGEX, CORE_DEFAULTS.manifestCache.secondaryRegex);
    assert.equal(DEFAULTS.PROXY_READ_TIMEOUT, CORE_DEFAULTS.upstream.readTimeout);
    assert.equal(DEFAULTS.PROXY_SEND_TIMEOUT, CORE_DEFAULTS.upstream.responseTimeout);
    assert.equal(DEFAULTS.UPSTREAM_STALE_TIMEOUT, CORE_DEFAULTS.upstream.staleTimeout);
    assert.equal(DEFAULTS.VERIFY_BLOB_ACCESS, CORE_DEFAULTS.verifyBlobAccess);
  });

  it('deep-freezes the options, lists and records included', () => {
    const c = loadConfig({
      env: { UPSTREAM_MAPPINGS: 'a.test=127.0.0.1', PROXY_AUTH: 'u:p' },
      cwd: '/work/x',
      inContainer: false,
    });
    for (const part of [c, c.registries, c.registries[0], c.upstreamMappings, c.proxyUsers[0], c.explicit]) {
      assert.ok(Object.isFrozen(part));
    }
  });

  it('takes typed values as they are, without a round trip through text', () => {
    const c = loadConfig({
      env: { PORT: '9000' },
      values: { PORT: 0, ALLOW_PUSH: true, UPSTREAM_MAPPINGS: { 'a.test:5000': '127.0.0.1' } },
      cwd: '/work/x',
      inContainer: false,
    });
    assert.equal(c.port, 0);
    assert.equal(c.allowPush, true);
    assert.deepEqual(c.upstreamMappings, { 'a.test:5000': '127.0.0.1' });
    assert.ok(c.explicit.includes('PORT') && c.explicit.includes('ALLOW_PUSH'));
  });
});
