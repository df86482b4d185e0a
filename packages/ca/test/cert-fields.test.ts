// The CA fields drp reads with der.ts at start, checked against @peculiar/x509 (which a start no
// longer loads) on a CA drp made and on openssl-made ones with and without the extensions.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as x509 from '@peculiar/x509';
import { readCertFields } from '../src/cert-fields.ts';
import { createCaCertificate } from '../src/generate.ts';
import { opensslSelfSigned } from './helpers.ts';

function compare(pem: string): void {
  const cert = new x509.X509Certificate(pem);
  const fields = readCertFields(new Uint8Array(cert.rawData));
  assert.equal(fields.notBefore.getTime(), cert.notBefore.getTime());
  assert.equal(fields.notAfter.getTime(), cert.notAfter.getTime());
  assert.deepEqual(fields.spki, Buffer.from(cert.publicKey.rawData));
  assert.equal(fields.basicConstraintsCa, cert.getExtension(x509.BasicConstraintsExtension)?.ca);
  const usage = cert.getExtension(x509.KeyUsagesExtension);
  assert.equal(fields.keyCertSign, usage ? (usage.usages & x509.KeyUsageFlags.keyCertSign) !== 0 : undefined);
  assert.equal(fields.subjectKeyId, cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId);
}

test('a CA drp creates: the same fields as @peculiar/x509 reads', async () => {
  const made = await createCaCertificate({
    keyType: 'ecdsa-p256',
    commonName: 'fields',
    validityDays: 30,
    now: new Date(),
  });
  compare(made.certPem);
});

test('openssl CAs (RSA with SKI, EC without keyUsage, a keyUsage without keyCertSign, GeneralizedTime)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'drp-cert-fields-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const variants = [
    { newkey: 'rsa:2048' },
    { ext: ['basicConstraints=critical,CA:TRUE', 'subjectKeyIdentifier=none'] },
    { ext: ['basicConstraints=CA:FALSE', 'keyUsage=digitalSignature'] },
    { days: 365 * 40 },
  ];
  for (const [i, options] of variants.entries()) {
    const sub = join(dir, String(i));
    await import('node:fs/promises').then((fs) => fs.mkdir(sub));
    const { certFile } = await opensslSelfSigned(sub, options);
    compare(await readFile(certFile, 'utf8'));
  }
});
