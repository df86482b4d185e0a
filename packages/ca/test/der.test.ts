// The hand-written DER of leaves, checked against an independent parser (@peculiar/x509,
// the same library that makes the CA) field by field.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as x509 from '@peculiar/x509';
import { certificateSubject, oid, time, unsignedInteger } from '../src/der.ts';
import { loadOrCreateCA } from '../src/index.ts';
import { ipBytes } from '../src/leaf.ts';
import { tempDir } from './helpers.ts';

describe('DER primitives', () => {
  it('encodes times as UTCTime before 2050 and GeneralizedTime from 2050', () => {
    assert.equal(time(new Date('2049-12-31T23:59:59Z')).toString('latin1').slice(2), '491231235959Z');
    assert.equal(time(new Date('2049-12-31T23:59:59Z'))[0], 0x17);
    assert.equal(time(new Date('2050-01-01T00:00:00Z')).toString('latin1').slice(2), '20500101000000Z');
    assert.equal(time(new Date('2050-01-01T00:00:00Z'))[0], 0x18);
  });

  it('encodes positive integers minimally', () => {
    assert.deepEqual([...unsignedInteger(Buffer.from([0, 0, 5]))], [0x02, 0x01, 0x05]);
    assert.deepEqual([...unsignedInteger(Buffer.from([0x80]))], [0x02, 0x02, 0x00, 0x80]);
    assert.deepEqual([...unsignedInteger(Buffer.from([0]))], [0x02, 0x01, 0x00]);
  });

  it('encodes OIDs', () => {
    assert.equal(oid('1.2.840.10045.4.3.2').toString('hex'), '06082a8648ce3d040302');
    assert.equal(oid('2.5.29.17').toString('hex'), '0603551d11');
  });

  it('turns canonical IP literals into network-order bytes', () => {
    assert.equal(ipBytes('10.1.2.3').toString('hex'), '0a010203');
    assert.equal(ipBytes('::1').toString('hex'), `${'0'.repeat(30)}01`);
    assert.equal(ipBytes('2001:db8::1').toString('hex'), '20010db8000000000000000000000001');
    assert.equal(ipBytes('fe80::').toString('hex'), `fe80${'0'.repeat(28)}`);
  });
});

describe('leaf structure', () => {
  for (const leafKeyType of ['ecdsa-p256', 'rsa-2048'] as const) {
    it(`${leafKeyType} leaf parses with @peculiar/x509 and carries exactly the intended fields`, async (t) => {
      const ca = await loadOrCreateCA({ dir: await tempDir(t), leafKeyType });
      t.after(() => ca.close());
      const leaf = await ca.issue('[2001:db8::7]');
      const cert = new x509.X509Certificate(leaf.certPem);
      const caCert = new x509.X509Certificate(ca.certPem);
      assert.equal(cert.issuer, caCert.subject);
      assert.equal(cert.subject, 'O=drp, CN=2001:db8::7');
      assert.equal(cert.serialNumber, leaf.serialNumber);
      assert.equal(cert.notBefore.getTime(), leaf.notBefore.getTime());
      assert.equal(cert.notAfter.getTime(), leaf.notAfter.getTime());
      assert.ok(await cert.verify({ publicKey: caCert.publicKey, signatureOnly: true }));

      const bc = cert.getExtension(x509.BasicConstraintsExtension);
      assert.equal(bc?.ca, false);
      assert.equal(bc?.critical, true);
      const ku = cert.getExtension(x509.KeyUsagesExtension);
      assert.equal(ku?.critical, true);
      assert.equal(
        ku?.usages,
        leafKeyType === 'rsa-2048'
          ? x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment
          : x509.KeyUsageFlags.digitalSignature,
      );
      assert.deepEqual(
        [...(cert.getExtension(x509.ExtendedKeyUsageExtension)?.usages ?? [])],
        [x509.ExtendedKeyUsage.serverAuth],
      );
      const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
      assert.deepEqual(JSON.parse(JSON.stringify(san?.names.toJSON())), [
        { type: 'ip', value: '2001:db8::7' },
      ]);
      const aki = cert.getExtension(x509.AuthorityKeyIdentifierExtension);
      assert.equal(aki?.keyId, caCert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId);
      const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension);
      assert.equal(
        ski?.keyId,
        await (await cert.publicKey).getKeyIdentifier('SHA-1').then((b) => Buffer.from(b).toString('hex')),
      );
      assert.equal(cert.extensions.length, 6);
    });
  }

  it('copies the CA subject into the leaf issuer byte for byte', async (t) => {
    const ca = await loadOrCreateCA({ dir: await tempDir(t) });
    t.after(() => ca.close());
    const leaf = await ca.issue('a.example');
    const der = Buffer.from(new x509.X509Certificate(leaf.certPem).rawData);
    const subject = certificateSubject(ca.certDer);
    assert.ok(der.includes(subject), 'leaf contains the CA subject bytes');
  });
});
