import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { type CaWarning, loadOrCreateCA } from '../src/index.ts';
import { clock, DAY, openssl, run, tempDir } from './helpers.ts';

const mode = async (path: string) => (await stat(path)).mode & 0o777;

describe('loadOrCreateCA from a directory', () => {
  it('creates a CA on first start: 0700 directory, 0600 key, subject naming host and date', async (t) => {
    const dir = join(await tempDir(t), 'ca'); // does not exist yet
    const ca = await loadOrCreateCA({ dir, now: () => new Date('2026-03-04T05:06:07Z') });
    t.after(() => ca.close());
    assert.equal(ca.origin, 'created');
    assert.equal(await mode(dir), 0o700);
    assert.equal(await mode(join(dir, 'ca.key')), 0o600);
    assert.equal(await mode(join(dir, 'ca.crt')), 0o644);
    assert.deepEqual((await readdir(dir)).sort(), ['ca.crt', 'ca.key']); // no temp or lock files left
    assert.match(ca.subject, new RegExp(`CN=drp CA Root ${hostname().slice(0, 20)}.* 2026\\.03\\.04 05:06`));
    assert.equal(ca.keyType, 'ecdsa-p256');
    assert.equal(ca.chainPem, '', 'a root sends no chain after its leaves');
    assert.equal(ca.notAfter.getTime(), new Date('2026-03-04T05:06:07Z').getTime() + 1300 * DAY);
    assert.deepEqual(ca.files, { certFile: join(dir, 'ca.crt'), keyFile: join(dir, 'ca.key') });

    const pem = await readFile(join(dir, 'ca.crt'), 'utf8');
    assert.equal(pem, ca.certPem);
    const x = new X509Certificate(pem);
    assert.equal(x.ca, true);
    assert.equal(x.fingerprint256, ca.fingerprint256);
    assert.deepEqual(ca.certDer, x.raw);
    const text = await openssl(['x509', '-in', join(dir, 'ca.crt'), '-noout', '-text']);
    assert.match(text, /CA:TRUE, pathlen:0/);
    assert.match(text, /Certificate Sign/);
  });

  it('tightens an existing, too open directory to 0700 when creating', async (t) => {
    const dir = await tempDir(t);
    const { chmod } = await import('node:fs/promises');
    await chmod(dir, 0o755);
    const ca = await loadOrCreateCA({ dir });
    ca.close();
    assert.equal(await mode(dir), 0o700);
  });

  it('loads the same CA on every later start (same fingerprint)', async (t) => {
    const dir = await tempDir(t);
    const first = await loadOrCreateCA({ dir });
    first.close();
    const second = await loadOrCreateCA({ dir });
    second.close();
    assert.equal(second.origin, 'loaded');
    assert.equal(second.fingerprint256, first.fingerprint256);
    assert.equal(second.certPem, first.certPem);
    // A leaf from the restarted CA verifies against the ca.crt written on first start.
    const leaf = await second.issue('registry.example');
    const leafPath = join(dir, 'leaf.pem');
    await writeFile(leafPath, leaf.certPem);
    assert.match(await openssl(['verify', '-CAfile', join(dir, 'ca.crt'), leafPath]), /OK/);
  });

  it('two concurrent first starts on one directory end up with one CA', async (t) => {
    const dir = await tempDir(t);
    const [a, b] = await Promise.all([loadOrCreateCA({ dir }), loadOrCreateCA({ dir })]);
    a.close();
    b.close();
    assert.equal(a.fingerprint256, b.fingerprint256);
    assert.deepEqual([a.origin, b.origin].sort(), ['created', 'loaded']);
  });

  it('three processes starting together on an empty directory agree on one CA', async (t) => {
    const dir = await tempDir(t);
    const script = join(dir, 'start.mts');
    const index = new URL('../src/index.ts', import.meta.url).href;
    await writeFile(
      script,
      `import { loadOrCreateCA } from ${JSON.stringify(index)};\n` +
        `const ca = await loadOrCreateCA({ dir: ${JSON.stringify(join(dir, 'ca'))} });\n` +
        'process.stdout.write(ca.fingerprint256); ca.close();\n',
    );
    const results = await Promise.all(
      [1, 2, 3].map(() => run(process.execPath, ['--import', 'tsx', script])),
    );
    for (const r of results) assert.equal(r.code, 0, r.stderr);
    assert.equal(new Set(results.map((r) => r.stdout)).size, 1);
    assert.deepEqual((await readdir(join(dir, 'ca'))).sort(), ['ca.crt', 'ca.key']);
  });

  it('finishes an install a crash interrupted (ca.key renamed, ca.crt.next pending)', async (t) => {
    const dir = await tempDir(t);
    const ca = await loadOrCreateCA({ dir });
    ca.close();
    const { rename } = await import('node:fs/promises');
    await rename(join(dir, 'ca.crt'), join(dir, 'ca.crt.next'));
    const again = await loadOrCreateCA({ dir });
    again.close();
    assert.equal(again.fingerprint256, ca.fingerprint256);
    assert.deepEqual((await readdir(dir)).sort(), ['ca.crt', 'ca.key']);
  });

  it('stores the key encrypted when created with a passphrase, and loads it with it', async (t) => {
    const dir = await tempDir(t);
    const ca = await loadOrCreateCA({ dir, passphrase: 'correct horse' });
    ca.close();
    assert.match(await readFile(join(dir, 'ca.key'), 'utf8'), /BEGIN ENCRYPTED PRIVATE KEY/);
    const again = await loadOrCreateCA({ dir, passphrase: 'correct horse' });
    again.close();
    assert.equal(again.fingerprint256, ca.fingerprint256);
    await assert.rejects(loadOrCreateCA({ dir }), { code: 'CA_KEY_PASSPHRASE' });
  });

  for (const caKeyType of ['ecdsa-p384', 'rsa-2048'] as const) {
    it(`creates a ${caKeyType} CA on request`, async (t) => {
      const ca = await loadOrCreateCA({
        dir: await tempDir(t),
        caKeyType,
        commonName: 'custom CN',
        validityDays: 10,
      });
      ca.close();
      assert.equal(ca.keyType, caKeyType);
      assert.match(ca.subject, /CN=custom CN/);
      assert.ok(ca.notAfter.getTime() - Date.now() <= 10 * DAY);
    });
  }
});

describe('loadOrCreateCA from PEM strings', () => {
  it('loads without touching the file system', async (t) => {
    const dir = await tempDir(t);
    const made = await loadOrCreateCA({ dir });
    made.close();
    const ca = await loadOrCreateCA({
      certPem: await readFile(join(dir, 'ca.crt'), 'utf8'),
      keyPem: await readFile(join(dir, 'ca.key'), 'utf8'),
    });
    ca.close();
    assert.equal(ca.fingerprint256, made.fingerprint256);
    assert.equal(ca.files, undefined);
    assert.equal(ca.origin, 'loaded');
  });
});

describe('expiry warning', () => {
  it("emits 'warning' when the CA expires within 30 days, at most once a day", async (t) => {
    const c = clock(new Date('2030-01-01T00:00:00Z'));
    const dir = await tempDir(t);
    const made = await loadOrCreateCA({ dir, now: c.now, validityDays: 40 });
    made.close();
    const ca = await loadOrCreateCA({ dir, now: c.now });
    t.after(() => ca.close());
    const warnings: CaWarning[] = [];
    ca.on('warning', (w) => warnings.push(w));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(warnings.length, 0, 'no warning 40 days before expiry');
    c.advance(15 * DAY);
    assert.equal(ca.checkExpiry()?.code, 'CA_EXPIRING');
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0]?.daysLeft, 25);
    assert.match(warnings[0]?.message ?? '', /expires on 2030-02-10/);
    ca.checkExpiry();
    assert.equal(warnings.length, 1, 'not repeated within a day');
    c.advance(DAY);
    ca.checkExpiry();
    assert.equal(warnings.length, 2);
  });

  it('warns right after loading a CA that is close to expiry', async (t) => {
    const c = clock(new Date('2030-01-01T00:00:00Z'));
    const dir = await tempDir(t);
    (await loadOrCreateCA({ dir, now: c.now, validityDays: 5 })).close();
    const ca = await loadOrCreateCA({ dir, now: c.now });
    t.after(() => ca.close());
    const warning = await new Promise<CaWarning>((resolve) => ca.once('warning', resolve));
    assert.equal(warning.daysLeft, 5);
  });
});
