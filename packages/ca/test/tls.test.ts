// Acceptance: real TLS clients (Node, curl, skopeo) trust a server presenting an issued leaf
// when, and only when, they trust drp's CA.
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { connect } from 'node:tls';
import { type CertificateAuthority, loadOrCreateCA } from '../src/index.ts';
import { run, startRegistry, type TestRegistry, tempDir } from './helpers.ts';

interface Fixture {
  ca: CertificateAuthority;
  other: CertificateAuthority;
  dir: string;
  certDir: string;
  otherCertDir: string;
}

async function fixture(t: TestContext): Promise<Fixture> {
  const dir = await tempDir(t);
  const ca = await loadOrCreateCA({ dir: join(dir, 'ca') });
  const other = await loadOrCreateCA({ dir: join(dir, 'other') });
  t.after(() => {
    ca.close();
    other.close();
  });
  // skopeo's --cert-dir wants a directory holding only *.crt files for CAs.
  const certDir = join(dir, 'trust');
  const otherCertDir = join(dir, 'trust-other');
  await mkdir(certDir);
  await mkdir(otherCertDir);
  await writeFile(join(certDir, 'ca.crt'), ca.certPem);
  await writeFile(join(otherCertDir, 'ca.crt'), other.certPem);
  return { ca, other, dir, certDir, otherCertDir };
}

/** A registry that picks its leaf by SNI through secureContext(), with the 127.0.0.1 leaf as default. */
async function sniRegistry(t: TestContext, ca: CertificateAuthority): Promise<TestRegistry> {
  const ip = await ca.issue('127.0.0.1');
  const registry = await startRegistry({
    cert: ip.certPem,
    key: ip.keyPem,
    SNICallback: (servername, cb) => {
      ca.secureContext(servername).then(
        (ctx) => cb(null, ctx),
        (err: Error) => cb(err),
      );
    },
  });
  t.after(() => registry.close());
  return registry;
}

function handshake(port: number, servername: string | undefined, caPem: string) {
  return new Promise<{ authorized: boolean; error?: string; subjectAltName?: string }>((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, servername, ca: caPem }, () => {
      const peer = socket.getPeerX509Certificate();
      resolve({ authorized: socket.authorized, subjectAltName: peer?.subjectAltName });
      socket.end();
    });
    socket.on('error', (err) => resolve({ authorized: false, error: (err as NodeJS.ErrnoException).code }));
  });
}

describe('TLS acceptance', () => {
  it('a Node TLS client trusting only the CA accepts the leaf chosen by SNI; one trusting another CA refuses', async (t) => {
    const { ca, other } = await fixture(t);
    const registry = await sniRegistry(t, ca);
    const ok = await handshake(registry.port, 'registry.test', ca.certPem);
    assert.deepEqual(ok, { authorized: true, subjectAltName: 'DNS:registry.test' });
    const refused = await handshake(registry.port, 'registry.test', other.certPem);
    assert.equal(refused.authorized, false);
    assert.match(refused.error ?? '', /UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY/);
    // No SNI (an IP literal): the default 127.0.0.1 leaf, checked against the IP.
    const ip = await handshake(registry.port, undefined, ca.certPem);
    assert.deepEqual(ip, { authorized: true, subjectAltName: 'IP Address:127.0.0.1' });
  });

  it('curl --cacert accepts DNS (via --resolve) and IP leaves, and refuses without the CA', async (t) => {
    const { ca, dir } = await fixture(t);
    const registry = await sniRegistry(t, ca);
    const caFile = join(dir, 'ca', 'ca.crt');
    const port = registry.port;
    const dns = await run('curl', [
      '-sS',
      '--cacert',
      caFile,
      '--resolve',
      `registry.test:${port}:127.0.0.1`,
      `https://registry.test:${port}/v2/`,
    ]);
    assert.equal(dns.code, 0, dns.stderr);
    assert.equal(dns.stdout, '{}');
    const ip = await run('curl', ['-sS', '--cacert', caFile, `https://127.0.0.1:${port}/v2/`]);
    assert.equal(ip.code, 0, ip.stderr);
    assert.equal(ip.stdout, '{}');
    const untrusted = await run('curl', ['-sS', `https://127.0.0.1:${port}/v2/`], {
      env: { ...process.env, CURL_CA_BUNDLE: join(dir, 'other', 'ca.crt') },
    });
    assert.equal(untrusted.code, 60, 'curl exit 60: peer certificate cannot be authenticated');
  });

  it('IPv6: curl and a Node client accept a leaf for [::1] (IP SAN), and skopeo when it can parse the reference', async (t) => {
    const { ca, dir, certDir } = await fixture(t);
    const leaf = await ca.issue('[::1]');
    const registry = await startRegistry({ cert: leaf.certPem, key: leaf.keyPem }, '::1');
    t.after(() => registry.close());
    const curl = await run('curl', [
      '-sS',
      '--cacert',
      join(dir, 'ca', 'ca.crt'),
      `https://[::1]:${registry.port}/v2/`,
    ]);
    assert.equal(curl.code, 0, curl.stderr);
    assert.equal(curl.stdout, '{}');
    const authorized = await new Promise<boolean | string>((resolve) => {
      const socket = connect({ host: '::1', port: registry.port, ca: ca.certPem }, () => {
        resolve(socket.authorized);
        socket.end();
      });
      socket.on('error', (err) => resolve(err.message));
    });
    assert.equal(authorized, true);
    const skopeo = await run('skopeo', [
      'inspect',
      '--raw',
      '--cert-dir',
      certDir,
      `docker://[::1]:${registry.port}/x/y:latest`,
    ]);
    if (skopeo.code !== 0) {
      // skopeo 1.9's reference parser rejects IPv6 literals outright; what must never happen is a TLS failure.
      assert.doesNotMatch(skopeo.stderr, /x509|certificate/);
    }
  });

  it('skopeo (Go crypto/x509) trusts the leaf with --cert-dir holding the CA, and refuses another CA', async (t) => {
    const { ca, certDir, otherCertDir } = await fixture(t);
    const registry = await sniRegistry(t, ca);
    const ref = `docker://127.0.0.1:${registry.port}/x/y:latest`;
    const ok = await run('skopeo', ['inspect', '--raw', '--cert-dir', certDir, ref]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(JSON.parse(ok.stdout).mediaType, 'application/vnd.oci.image.manifest.v1+json');
    const refused = await run('skopeo', ['inspect', '--raw', '--cert-dir', otherCertDir, ref]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /x509: certificate signed by unknown authority/);
  });
});
