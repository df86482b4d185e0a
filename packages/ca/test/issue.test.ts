import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { type CaOptions, type CertificateAuthority, type IssuedEvent, loadOrCreateCA } from '../src/index.ts';
import { clock, DAY, openssl, tempDir } from './helpers.ts';

async function setup(
  t: TestContext,
  options: Partial<CaOptions> = {},
): Promise<{ ca: CertificateAuthority; dir: string }> {
  const dir = await tempDir(t);
  const ca = await loadOrCreateCA({ dir, ...options });
  t.after(() => ca.close());
  return { ca, dir };
}

/** openssl's verdict on a leaf, checked for the TLS server purpose and the name it is for. */
async function verify(dir: string, pem: string, check: string[]): Promise<string> {
  const path = join(dir, `leaf-${Math.random().toString(36).slice(2)}.pem`);
  await writeFile(path, pem);
  return openssl(['verify', '-purpose', 'sslserver', ...check, '-CAfile', join(dir, 'ca.crt'), path]);
}

describe('issue()', () => {
  it('issues a DNS leaf that openssl verifies: SAN DNS, EKU serverAuth, not a CA, 90 days', async (t) => {
    const { ca, dir } = await setup(t);
    const leaf = await ca.issue('Registry-1.Docker.io');
    assert.equal(leaf.name, 'registry-1.docker.io');
    assert.match(await verify(dir, leaf.certPem, ['-verify_hostname', 'registry-1.docker.io']), /: OK/);
    const x = new X509Certificate(leaf.certPem);
    assert.equal(x.subjectAltName, 'DNS:registry-1.docker.io');
    assert.equal(x.ca, false);
    assert.deepEqual(x.keyUsage, ['1.3.6.1.5.5.7.3.1']);
    assert.equal(x.checkIssued(new X509Certificate(ca.certPem)), true);
    assert.equal(x.publicKey.asymmetricKeyType, 'ec');
    assert.ok(x.checkPrivateKey((await import('node:crypto')).createPrivateKey(leaf.keyPem)));
    const lifetime = leaf.notAfter.getTime() - leaf.notBefore.getTime();
    assert.ok(lifetime <= 90 * DAY + 3_600_000, 'at most 90 days (plus the 1 h backdating)');
    assert.ok(leaf.notAfter.getTime() - Date.now() > 89 * DAY);
    const text = await openssl(['x509', '-noout', '-text', '-in', join(dir, 'ca.crt')]);
    assert.match(text, /Subject Key Identifier/);
  });

  it('issues IPv4 and IPv6 leaves with an IP SAN (not DNS), verified by openssl -verify_ip', async (t) => {
    const { ca, dir } = await setup(t);
    const v4 = await ca.issue('127.0.0.1');
    assert.equal(new X509Certificate(v4.certPem).subjectAltName, 'IP Address:127.0.0.1');
    assert.match(await verify(dir, v4.certPem, ['-verify_ip', '127.0.0.1']), /: OK/);
    const v6 = await ca.issue('[2001:db8::1]');
    assert.equal(v6.name, '2001:db8::1');
    assert.equal(new X509Certificate(v6.certPem).subjectAltName, 'IP Address:2001:DB8:0:0:0:0:0:1');
    assert.match(await verify(dir, v6.certPem, ['-verify_ip', '2001:db8::1']), /: OK/);
    // A DNS leaf must not pass for an IP and vice versa.
    const dns = await ca.issue('example.com');
    await assert.rejects(verify(dir, dns.certPem, ['-verify_ip', '127.0.0.1']));
    await assert.rejects(verify(dir, v4.certPem, ['-verify_hostname', '127.0.0.1.nip.io']));
  });

  it('issues RSA-2048 leaves on request', async (t) => {
    const { ca, dir } = await setup(t, { leafKeyType: 'rsa-2048' });
    const leaf = await ca.issue('old-client.example');
    const x = new X509Certificate(leaf.certPem);
    assert.equal(x.publicKey.asymmetricKeyType, 'rsa');
    assert.equal(x.publicKey.asymmetricKeyDetails?.modulusLength, 2048);
    assert.equal(leaf.keyType, 'rsa-2048');
    assert.match(await verify(dir, leaf.certPem, ['-verify_hostname', 'old-client.example']), /: OK/);
  });

  it('gives each ECDSA leaf its own key; RSA leaves share one key, replaced daily', async (t) => {
    const c = clock(new Date('2031-01-01T00:00:00Z'));
    const ec = await setup(t, { now: c.now });
    const [a, b] = await Promise.all([ec.ca.issue('a.example'), ec.ca.issue('b.example')]);
    assert.notEqual(a.keyPem, b.keyPem);
    const rsa = await setup(t, { now: c.now, leafKeyType: 'rsa-2048' });
    const [x, y] = await Promise.all([rsa.ca.issue('x.example'), rsa.ca.issue('y.example')]);
    assert.equal(x.keyPem, y.keyPem);
    c.advance(DAY + 1000);
    assert.notEqual((await rsa.ca.issue('z.example')).keyPem, x.keyPem);
  });

  it('signs with an RSA CA too', async (t) => {
    const { ca, dir } = await setup(t, { caKeyType: 'rsa-2048' });
    assert.match(await verify(dir, (await ca.issue('x.example')).certPem, []), /: OK/);
  });

  it('caches per canonical name and shares one issuance between concurrent callers', async (t) => {
    const { ca } = await setup(t);
    const issued: IssuedEvent[] = [];
    ca.on('issued', (e) => issued.push(e));
    const all = await Promise.all([
      ca.issue('a.example'),
      ca.issue('A.EXAMPLE.'),
      ca.issue('a.example'),
      ca.secureContext('a.example'),
    ]);
    assert.equal(issued.length, 1);
    assert.equal(all[0], all[1]);
    assert.equal(all[0], all[2]);
    assert.equal(await ca.issue('a.example'), all[0]);
    assert.equal(await ca.secureContext('a.example'), all[3], 'secure contexts are cached too');
    assert.equal(issued.length, 1);
    await Promise.all(Array.from({ length: 20 }, (_, i) => ca.issue(`n${i % 5}.example`)));
    assert.equal(issued.length, 6);
    assert.ok(issued.every((e) => e.renewal === false && e.durationMs >= 0));
  });

  it('never issues past the CA’s own expiry', async (t) => {
    const c = clock(new Date('2031-01-01T00:00:00Z'));
    const { ca, dir } = await setup(t, { now: c.now, validityDays: 10 });
    const leaf = await ca.issue('short.example');
    assert.equal(leaf.notAfter.getTime(), ca.notAfter.getTime());
    assert.ok(leaf.notBefore.getTime() >= ca.notBefore.getTime());
    const text = await openssl(['x509', '-noout', '-enddate', '-in', join(dir, 'ca.crt')]);
    assert.equal(
      new Date(text.replace('notAfter=', '').trim()).getTime(),
      new Date(new X509Certificate(leaf.certPem).validTo).getTime(),
    );
  });

  it('renews in the background after two thirds of the lifetime and waits when expired', async (t) => {
    const c = clock(new Date('2031-01-01T00:00:00Z'));
    const { ca } = await setup(t, { now: c.now, leafValidityDays: 30 });
    const issued: IssuedEvent[] = [];
    ca.on('issued', (e) => issued.push(e));
    const first = await ca.issue('renew.example');
    c.advance(15 * DAY);
    assert.equal(await ca.issue('renew.example'), first, 'half-way: still the same leaf');
    c.advance(6 * DAY); // past two thirds of 30 days (+1 h backdating)
    assert.equal(await ca.issue('renew.example'), first, 'served while a replacement is made');
    await new Promise((resolve) => ca.once('issued', resolve));
    const second = await ca.issue('renew.example');
    assert.notEqual(second, first);
    assert.ok(second.notAfter > first.notAfter);
    assert.equal(issued.at(-1)?.renewal, true);
    c.advance(31 * DAY); // second has expired: the caller waits for a fresh leaf
    const third = await ca.issue('renew.example');
    assert.notEqual(third, second);
    assert.ok(third.notAfter.getTime() > c.now().getTime());
  });

  it('refuses to issue once the CA has expired', async (t) => {
    const c = clock(new Date('2031-01-01T00:00:00Z'));
    const { ca } = await setup(t, { now: c.now, validityDays: 3 });
    c.advance(4 * DAY);
    await assert.rejects(ca.issue('late.example'), { code: 'CA_EXPIRED' });
  });

  it('bounds the cache (least recently used names dropped first)', async (t) => {
    const { ca } = await setup(t, { maxCachedLeaves: 3 });
    const a = await ca.issue('a.example');
    await ca.issue('b.example');
    await ca.issue('c.example');
    await ca.issue('a.example'); // a is now the most recent
    await ca.issue('d.example'); // drops b
    assert.equal(ca.cachedLeaves, 3);
    assert.equal(await ca.issue('a.example'), a);
  });

  it("a throwing 'issued' listener does not fail the issuance", async (t) => {
    const { ca } = await setup(t);
    ca.on('issued', () => {
      throw new Error('listener bug');
    });
    assert.equal((await ca.issue('listener.example')).name, 'listener.example');
  });

  it('rejects invalid names with CA_INVALID_NAME, and a failure is not cached', async (t) => {
    const { ca } = await setup(t);
    await assert.rejects(ca.issue('not a host'), { code: 'CA_INVALID_NAME' });
    await assert.rejects(ca.secureContext('host:443'), { code: 'CA_INVALID_NAME' });
    assert.equal(ca.cachedLeaves, 0);
  });
});
