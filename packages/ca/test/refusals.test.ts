// Every way loadOrCreateCA refuses a CA, each with its own stable code and a message that
// names the file; and in no case does a refusal overwrite what is on disk.
import assert from 'node:assert/strict';
import { chmod, copyFile, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { CaError, type CaErrorCode, type CaOptions, loadOrCreateCA } from '../src/index.ts';
import { DAY, openssl, opensslSelfSigned, tempDir } from './helpers.ts';

async function refuses(options: CaOptions, code: CaErrorCode, message?: RegExp): Promise<void> {
  await assert.rejects(loadOrCreateCA(options), (err: unknown) => {
    assert.ok(err instanceof CaError, `expected a CaError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (message) assert.match(err.message, message);
    return true;
  });
}

async function drpCa(t: TestContext, options: Partial<CaOptions> = {}): Promise<string> {
  const dir = await tempDir(t);
  (await loadOrCreateCA({ dir, ...options })).close();
  return dir;
}

describe('refusals', () => {
  it('CA_EXPIRED: a CA whose notAfter has passed', async (t) => {
    const dir = await drpCa(t, { now: () => new Date(Date.now() - 10 * DAY), validityDays: 2 });
    const before = await readFile(join(dir, 'ca.crt'), 'utf8');
    await refuses({ dir }, 'CA_EXPIRED', /expired on .* rotate it/);
    assert.equal(
      await readFile(join(dir, 'ca.crt'), 'utf8'),
      before,
      'an expired CA is not silently replaced',
    );
  });

  it('CA_NOT_YET_VALID: a CA from the future', async (t) => {
    const dir = await drpCa(t, { now: () => new Date(Date.now() + 10 * DAY) });
    await refuses({ dir }, 'CA_NOT_YET_VALID', /not valid before/);
  });

  it('CA_NOT_A_CA: basicConstraints CA:FALSE', async (t) => {
    const dir = await tempDir(t);
    const files = await opensslSelfSigned(dir, { ext: ['basicConstraints=critical,CA:FALSE'] });
    await refuses(files, 'CA_NOT_A_CA', /basicConstraints/);
  });

  it('CA_NOT_A_CA: CA:TRUE but keyUsage without keyCertSign', async (t) => {
    const dir = await tempDir(t);
    const files = await opensslSelfSigned(dir, {
      ext: ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,digitalSignature'],
    });
    await refuses(files, 'CA_NOT_A_CA', /keyCertSign/);
  });

  it('CA_KEY_MISMATCH: a key that is not the certificate’s', async (t) => {
    const a = await drpCa(t);
    const b = await drpCa(t);
    await copyFile(join(b, 'ca.key'), join(a, 'ca.key'));
    await refuses({ dir: a }, 'CA_KEY_MISMATCH', /does not belong/);
  });

  for (const mode of [0o644, 0o604, 0o660, 0o666, 0o601]) {
    it(`CA_KEY_PERMISSIONS: key file mode ${mode.toString(8)}`, async (t) => {
      const dir = await drpCa(t);
      await chmod(join(dir, 'ca.key'), mode);
      await refuses({ dir }, 'CA_KEY_PERMISSIONS', /chmod 600/);
    });
  }

  it('accepts a group-readable key (0640, e.g. Kubernetes secrets with fsGroup) and 0400', async (t) => {
    const dir = await drpCa(t);
    for (const mode of [0o640, 0o400]) {
      await chmod(join(dir, 'ca.key'), mode);
      (await loadOrCreateCA({ dir })).close();
    }
  });

  it('CA_KEY_PASSPHRASE: encrypted key without a passphrase, and with a wrong one', async (t) => {
    const dir = await tempDir(t);
    const files = await opensslSelfSigned(dir);
    await openssl([
      'pkcs8',
      '-topk8',
      '-in',
      files.keyFile,
      '-out',
      `${files.keyFile}.enc`,
      '-passout',
      'pass:s3cret',
    ]);
    await copyFile(`${files.keyFile}.enc`, files.keyFile);
    await chmod(files.keyFile, 0o600);
    await refuses(files, 'CA_KEY_PASSPHRASE', /is encrypted: give its passphrase/);
    await refuses({ ...files, passphrase: 'wrong' }, 'CA_KEY_PASSPHRASE', /does not decrypt/);
    (await loadOrCreateCA({ ...files, passphrase: 's3cret' })).close();
  });

  it('CA_INCOMPLETE: ca.crt without ca.key (and the reverse); nothing is regenerated', async (t) => {
    const dir = await drpCa(t);
    const cert = await readFile(join(dir, 'ca.crt'), 'utf8');
    await rm(join(dir, 'ca.key'));
    await refuses({ dir }, 'CA_INCOMPLETE', /ca\.crt exists but .*ca\.key does not/);
    assert.equal(await readFile(join(dir, 'ca.crt'), 'utf8'), cert);

    const other = await drpCa(t);
    await rm(join(other, 'ca.crt'));
    await refuses({ dir: other }, 'CA_INCOMPLETE', /ca\.key exists but .*ca\.crt does not/);
  });

  it('CA_NOT_FOUND: bring-your-own files that do not exist', async (t) => {
    const dir = await tempDir(t);
    await refuses({ certFile: join(dir, 'x.crt'), keyFile: join(dir, 'x.key') }, 'CA_NOT_FOUND');
  });

  it('CA_INVALID_CERT: a certificate file that is not a certificate', async (t) => {
    const dir = await drpCa(t);
    await writeFile(join(dir, 'ca.crt'), 'hello\n');
    await refuses({ dir }, 'CA_INVALID_CERT', /contains no PEM certificate/);
    await writeFile(join(dir, 'ca.crt'), '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    await refuses({ dir }, 'CA_INVALID_CERT', /not a readable X\.509/);
  });

  it('CA_INVALID_KEY: a key file that is not a key', async (t) => {
    const dir = await drpCa(t);
    await writeFile(join(dir, 'ca.key'), '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n', {
      mode: 0o600,
    });
    await refuses({ dir }, 'CA_INVALID_KEY', /ca\.key is not a readable PEM private key/);
  });

  it('CA_WEAK_KEY: an RSA-1024 CA', async (t) => {
    const dir = await tempDir(t);
    const files = await opensslSelfSigned(dir, { newkey: 'rsa:1024' });
    await refuses(files, 'CA_WEAK_KEY', /1024 bits/);
  });

  it('CA_UNSUPPORTED_KEY: an Ed25519 CA', async (t) => {
    const dir = await tempDir(t);
    const files = await opensslSelfSigned(dir, { newkey: 'ed25519' });
    await refuses(files, 'CA_UNSUPPORTED_KEY', /ed25519/);
  });

  it('CA_INVALID_OPTIONS: no source, two sources, half a pair, bad values', async (t) => {
    const dir = await tempDir(t);
    await refuses({}, 'CA_INVALID_OPTIONS', /exactly one CA source/);
    await refuses({ dir, certPem: 'x', keyPem: 'y' }, 'CA_INVALID_OPTIONS');
    await refuses({ certPem: 'x' }, 'CA_INVALID_OPTIONS', /together/);
    await refuses({ certFile: join(dir, 'a') }, 'CA_INVALID_OPTIONS', /together/);
    await refuses({ dir, leafKeyType: 'dsa' as never }, 'CA_INVALID_OPTIONS', /leafKeyType/);
    await refuses({ dir, caKeyType: 'rsa-1024' as never }, 'CA_INVALID_OPTIONS', /caKeyType/);
    await refuses({ dir, leafValidityDays: 91 }, 'CA_INVALID_OPTIONS', /leafValidityDays/);
    await refuses({ dir, validityDays: 0 }, 'CA_INVALID_OPTIONS', /validityDays/);
    await refuses({ dir, commonName: 'x'.repeat(65) }, 'CA_INVALID_OPTIONS', /commonName/);
  });
});
