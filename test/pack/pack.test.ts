// The packages as npm users get them: every workspace package packed with `pnpm pack`, the
// tarballs installed into a blank directory with plain `npm install` (their third-party
// dependencies come from the npm registry, as for a user), then used the ways the README says:
// `npx drp-server`, the daemon on PORT=0 serving /ca.crt, imports from ESM and CommonJS, and a
// TypeScript consumer with skipLibCheck: false.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createHarness, type Harness } from '../harness/index.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const PACKAGES = readdirSync(join(ROOT, 'packages')).sort();
const TSC = join(ROOT, 'node_modules/.bin/tsc');
const TYPES_NODE = (
  JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> }
).devDependencies['@types/node'];

/** A plain environment: no pnpm/npm settings inherited from the test runner's own invocation. */
const PLAIN_ENV = Object.fromEntries(
  Object.keys(process.env)
    .filter((k) => /^npm_/i.test(k))
    .map((k) => [k, undefined]),
) as Record<string, string | undefined>;

interface Packed {
  name: string;
  tarball: string;
  files: string[];
  manifest: Record<string, unknown>;
  readme: string;
}

describe('packed packages installed with npm', { timeout: 240_000 }, () => {
  let h: Harness;
  let consumer: string;
  const packed: Packed[] = [];

  before(async () => {
    h = createHarness();
    const out = h.tempDir('tarballs');
    // One directory per package: @drp/server and drp-server both pack to drp-server-<version>.tgz.
    await Promise.all(
      PACKAGES.map(async (dir) => {
        const dest = join(out, dir);
        await h.run('npx', ['-y', 'pnpm@12.4.2', 'pack', '--pack-destination', dest], {
          cwd: join(ROOT, 'packages', dir),
          env: PLAIN_ENV,
        });
        const [file] = readdirSync(dest).filter((f) => f.endsWith('.tgz'));
        assert.ok(file, `pnpm pack made no tarball for packages/${dir}`);
        const tarball = join(dest, file);
        const files = (await h.run('tar', ['tzf', tarball])).stdout.split('\n').filter(Boolean);
        const manifest = JSON.parse((await h.run('tar', ['xzOf', tarball, 'package/package.json'])).stdout);
        const readme = files.includes('package/README.md')
          ? (await h.run('tar', ['xzOf', tarball, 'package/README.md'])).stdout
          : '';
        packed.push({ name: manifest.name, tarball, files, manifest, readme });
      }),
    );
    consumer = h.tempDir('consumer');
    writeFileSync(join(consumer, 'package.json'), '{ "name": "consumer", "private": true }\n');
    await h.run(
      'npm',
      ['install', '--no-fund', '--no-audit', ...packed.map((p) => p.tarball), `@types/node@${TYPES_NODE}`],
      { cwd: consumer, env: PLAIN_ENV, timeoutMs: 180_000 },
    );
  });
  after(() => h.close());

  it('packs every package with a license, a readme, links and no build info', () => {
    assert.deepEqual(packed.map((p) => p.name).sort(), ['@drp/ca', '@drp/core', '@drp/server', 'drp-server']);
    for (const p of packed) {
      assert.ok(p.files.includes('package/LICENSE'), `${p.name}: LICENSE`);
      assert.ok(p.files.includes('package/README.md'), `${p.name}: README.md`);
      assert.deepEqual(
        p.files.filter((f) => f.endsWith('.tsbuildinfo')),
        [],
        `${p.name}: no tsbuildinfo`,
      );
      for (const field of ['repository', 'homepage', 'bugs', 'license', 'engines']) {
        assert.ok(p.manifest[field], `${p.name}: ${field}`);
      }
      const deps = JSON.stringify(p.manifest.dependencies ?? {});
      assert.ok(!deps.includes('workspace:'), `${p.name}: workspace ranges replaced: ${deps}`);
      assert.doesNotMatch(p.readme, /\]\(\.\.?\//, `${p.name}: README links are absolute`);
    }
  });

  it('gives the libraries caret ranges for their runtime dependencies', () => {
    for (const name of ['@drp/core', '@drp/ca']) {
      const deps = packed.find((p) => p.name === name)?.manifest.dependencies as Record<string, string>;
      for (const [dep, range] of Object.entries(deps))
        assert.match(range, /^\^/, `${name} -> ${dep}@${range}`);
    }
  });

  it('runs `npx drp-server --help` and the unscoped package bin', async () => {
    const help = await h.run('npx', ['--no-install', 'drp-server', '--help'], {
      cwd: consumer,
      env: PLAIN_ENV,
    });
    assert.match(help.stdout, /^drp-server \d+\.\d+\.\d+: a caching proxy for container registries/);
    assert.match(help.stdout, /PROXY_SEND_TIMEOUT differs from the original/);
    assert.match(help.stdout, /\*\.domain/);
    const bin = join(consumer, 'node_modules/drp-server/bin/drp-server.js');
    const version = await h.run(process.execPath, [bin, '--version'], { cwd: consumer });
    const own = packed.find((p) => p.name === 'drp-server')?.manifest.version;
    assert.equal(version.stdout.trim(), own);
  });

  it('starts the daemon on PORT=0, serves /ca.crt, stops cleanly on SIGTERM', async () => {
    const lines: Record<string, unknown>[] = [];
    let started: (line: Record<string, unknown>) => void = () => {};
    const startup = new Promise<Record<string, unknown>>((resolve) => {
      started = resolve;
    });
    const daemon = h.spawn(process.execPath, [join(consumer, 'node_modules/drp-server/bin/drp-server.js')], {
      cwd: consumer,
      env: { ...PLAIN_ENV, PORT: '0', BIND: '127.0.0.1', REGISTRIES: 'ghcr.io,*.example.com' },
      onLine(line, stream) {
        if (stream !== 'stdout' || !line.startsWith('{')) return;
        const parsed = JSON.parse(line) as Record<string, unknown>;
        lines.push(parsed);
        if (parsed.type === 'startup') started(parsed);
      },
    });
    const info = await Promise.race([
      startup,
      daemon.exited.then((code) => {
        throw new Error(`drp-server exited (${code}):\n${daemon.output()}`);
      }),
    ]);
    assert.deepEqual(info.intercepting, [
      'ghcr.io',
      '*.example.com',
      'registry-1.docker.io',
      'auth.docker.io',
    ]);
    const port = Number(info.port);
    assert.ok(port > 0);
    const res = await fetch(`http://127.0.0.1:${port}/ca.crt`);
    assert.equal(res.status, 200);
    const pem = await res.text();
    assert.match(pem, /^-----BEGIN CERTIFICATE-----\n/);
    process.kill(daemon.pid, 'SIGTERM');
    assert.equal(await daemon.exited, 0);
    assert.ok(lines.some((l) => l.type === 'shutdown'));
    // The CA persisted under ./.drp of the directory it was started in.
    const printed = await h.run('npx', ['--no-install', 'drp-server', 'ca', 'print'], {
      cwd: consumer,
      env: PLAIN_ENV,
    });
    assert.equal(printed.stdout, pem);
  });

  it('imports from ESM: startProxy serves its CA, the libraries load', async () => {
    const file = join(consumer, 'esm.mjs');
    writeFileSync(
      file,
      `import { createRegistryCache, parseDuration } from '@drp/core';
import { loadOrCreateCA } from '@drp/ca';
import { startProxy } from '@drp/server';
const proxy = await startProxy({ registries: ['ghcr.io'] });
const pem = await (await fetch(proxy.url + '/ca.crt')).text();
console.log(JSON.stringify({ same: pem === proxy.caCertPem, cache: typeof createRegistryCache,
  ca: typeof loadOrCreateCA, hour: parseDuration('1h') }));
await proxy.close(0);
`,
    );
    const out = await h.run(process.execPath, [file], { cwd: consumer });
    assert.deepEqual(JSON.parse(out.stdout), {
      same: true,
      cache: 'function',
      ca: 'function',
      hour: 3_600_000,
    });
  });

  it('requires from CommonJS (require(esm), Node 20.19+ / 22.12+)', async () => {
    const file = join(consumer, 'cjs.cjs');
    writeFileSync(
      file,
      `const core = require('@drp/core');
const server = require('@drp/server');
const ca = require('@drp/ca');
console.log([typeof core.createRegistryCache, typeof server.startProxy, typeof ca.loadOrCreateCA].join(' '));
`,
    );
    const out = await h.run(process.execPath, [file], { cwd: consumer });
    assert.equal(out.stdout.trim(), 'function function function');
  });

  it('type-checks a TypeScript consumer with skipLibCheck: false (and catches its mistakes)', async () => {
    writeFileSync(
      join(consumer, 'tsconfig.json'),
      `${JSON.stringify({
        compilerOptions: {
          target: 'ES2023',
          lib: ['ES2023'],
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          types: ['node'],
          strict: true,
          skipLibCheck: false,
          noEmit: true,
        },
      })}\n`,
    );
    writeFileSync(
      join(consumer, 'good.mts'),
      `import { createRegistryCache, type RegistryCache } from '@drp/core';
import { loadOrCreateCA, type CertificateAuthority } from '@drp/ca';
import { startProxy, loadConfig, type RunningProxy, type ServerConfig } from '@drp/server';
export async function main(): Promise<string> {
  const proxy: RunningProxy = await startProxy({ registries: ['ghcr.io', '*.example.com'] });
  const ca: CertificateAuthority = await loadOrCreateCA({ dir: proxy.caDir });
  const cache: RegistryCache = await createRegistryCache({ cacheDir: proxy.cacheDir });
  const config: ServerConfig = loadConfig({ env: {} });
  await proxy.close();
  return ca.certPem + String(cache) + config.port;
}
`,
    );
    const good = await h.run(TSC, ['-p', '.'], { cwd: consumer, check: false });
    assert.equal(good.code, 0, `tsc on a correct consumer:\n${good.stdout}${good.stderr}`);

    writeFileSync(
      join(consumer, 'bad.mts'),
      `import { startProxy } from '@drp/server';\nexport const p = startProxy({ port: 'not a number' });\n`,
    );
    const bad = await h.run(TSC, ['-p', '.'], { cwd: consumer, check: false });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stdout, /bad\.mts.*TS2322/);
    assert.doesNotMatch(bad.stdout, /node_modules/, 'no errors inside the packages themselves');
  });
});
