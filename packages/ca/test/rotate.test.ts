import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadOrCreateCA, rotateCA } from '../src/index.ts';
import { DAY, tempDir } from './helpers.ts';

describe('rotateCA', () => {
  it('replaces the CA and keeps the previous pair as <file>.<UTC stamp>.bak (key 0600)', async (t) => {
    const dir = await tempDir(t);
    const old = await loadOrCreateCA({ dir });
    old.close();
    const now = () => new Date('2027-05-06T07:08:09.123Z');
    const rotated = await rotateCA({ dir, now });
    rotated.close();
    assert.equal(rotated.origin, 'created');
    assert.notEqual(rotated.fingerprint256, old.fingerprint256);
    assert.deepEqual((await readdir(dir)).sort(), [
      'ca.crt',
      'ca.crt.20270506T070809Z.bak',
      'ca.key',
      'ca.key.20270506T070809Z.bak',
    ]);
    assert.deepEqual(rotated.files?.backup, {
      certFile: join(dir, 'ca.crt.20270506T070809Z.bak'),
      keyFile: join(dir, 'ca.key.20270506T070809Z.bak'),
    });
    assert.equal((await stat(join(dir, 'ca.key.20270506T070809Z.bak'))).mode & 0o777, 0o600);
    assert.equal((await stat(join(dir, 'ca.key'))).mode & 0o777, 0o600);
    const backup = new X509Certificate(await readFile(join(dir, 'ca.crt.20270506T070809Z.bak')));
    assert.equal(backup.fingerprint256, old.fingerprint256);

    const reloaded = await loadOrCreateCA({ dir, now });
    reloaded.close();
    assert.equal(reloaded.fingerprint256, rotated.fingerprint256);
  });

  it('rotates an expired CA (the usual reason to rotate)', async (t) => {
    const dir = await tempDir(t);
    (await loadOrCreateCA({ dir, now: () => new Date(Date.now() - 30 * DAY), validityDays: 1 })).close();
    await assert.rejects(loadOrCreateCA({ dir }), { code: 'CA_EXPIRED' });
    const rotated = await rotateCA({ dir, caKeyType: 'ecdsa-p384', validityDays: 365 });
    rotated.close();
    assert.equal(rotated.keyType, 'ecdsa-p384');
    (await loadOrCreateCA({ dir })).close();
  });

  it('creates a CA when there is none yet', async (t) => {
    const dir = await tempDir(t);
    const ca = await rotateCA({ dir });
    ca.close();
    assert.deepEqual(ca.files?.backup, {});
    assert.deepEqual((await readdir(dir)).sort(), ['ca.crt', 'ca.key']);
  });

  it('starts during a rotation see the old CA or the new one, never half of each', async (t) => {
    const dir = await tempDir(t);
    const old = await loadOrCreateCA({ dir });
    old.close();
    let rotating = true;
    const rotation = rotateCA({ dir }).finally(() => {
      rotating = false;
    });
    const seen = new Set<string>();
    while (rotating) {
      const ca = await loadOrCreateCA({ dir });
      seen.add(ca.fingerprint256);
      ca.close();
    }
    const rotated = await rotation;
    rotated.close();
    for (const fingerprint of seen)
      assert.ok([old.fingerprint256, rotated.fingerprint256].includes(fingerprint));
  });

  it('a lock left by a crashed process (older than 30 s) does not block creation', async (t) => {
    const dir = await tempDir(t);
    const lock = join(dir, '.ca.lock');
    await writeFile(lock, '99999');
    const past = new Date(Date.now() - 60_000);
    await utimes(lock, past, past);
    const ca = await loadOrCreateCA({ dir });
    ca.close();
    assert.equal(ca.origin, 'created');
    assert.deepEqual((await readdir(dir)).sort(), ['ca.crt', 'ca.key']);
  });

  it('needs a location', async () => {
    await assert.rejects(rotateCA({}), { code: 'CA_INVALID_OPTIONS' });
  });
});
