// Bring your own CA (the original's CA_CRT_FILE / CA_KEY_FILE), with keys made by openssl:
// the original's own form (RSA-4096, traditional DES3 PEM with its fixed passphrase), PKCS#8
// encrypted, and unencrypted. Go (skopeo) must accept leaves signed by such a CA.
import assert from 'node:assert/strict';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadOrCreateCA } from '../src/index.ts';
import { openssl, opensslSelfSigned, run, startRegistry, tempDir } from './helpers.ts';

const IA_EXT = [
  'basicConstraints=critical,CA:TRUE',
  'keyUsage=critical,digitalSignature,cRLSign,keyCertSign',
  'subjectKeyIdentifier=hash',
];

/** The CA exactly as the original's create_ca_cert.sh makes it (its openssl 1.1 wrote traditional PEM). */
async function originalStyleCa(dir: string, passphrase = 'foobar', bits = 4096) {
  const keyFile = join(dir, 'ca.key');
  const certFile = join(dir, 'ca.crt');
  await openssl([
    'genrsa',
    '-traditional',
    '-des3',
    '-passout',
    `pass:${passphrase}`,
    '-out',
    keyFile,
    String(bits),
  ]);
  const args = ['req', '-new', '-x509', '-days', '1300', '-sha256', '-key', keyFile, '-out', certFile];
  args.push('-passin', `pass:${passphrase}`);
  args.push(
    '-subj',
    '/C=NL/ST=Noord Holland/L=Amsterdam/O=ME/OU=IT/CN=DockerMirrorBox CA Root host 2024.01.01 00:00',
  );
  for (const ext of IA_EXT) args.push('-addext', ext);
  await openssl(args);
  return { certFile, keyFile };
}

describe('bring-your-own CA', () => {
  it('loads the original’s /ca volume unchanged (RSA-4096, DES3 "foobar") and Go trusts its leaves', async (t) => {
    const dir = await tempDir(t);
    const files = await originalStyleCa(dir);
    assert.match(await readFile(files.keyFile, 'utf8'), /Proc-Type: 4,ENCRYPTED/);
    assert.equal((await stat(files.keyFile)).mode & 0o777, 0o600, 'openssl writes keys 0600');

    // As a directory, without a passphrase: the original's fixed one is tried.
    const ca = await loadOrCreateCA({ dir });
    t.after(() => ca.close());
    assert.equal(ca.origin, 'loaded');
    assert.equal(ca.keyType, 'rsa-4096');
    assert.match(ca.subject, /CN=DockerMirrorBox CA Root/);
    const fingerprint = (await openssl(['x509', '-noout', '-fingerprint', '-sha256', '-in', files.certFile]))
      .trim()
      .replace(/^.*=/, '');
    assert.equal(ca.fingerprint256, fingerprint);

    // As CA_CRT_FILE / CA_KEY_FILE with the passphrase spelled out: the same CA.
    const byFiles = await loadOrCreateCA({ ...files, passphrase: 'foobar' });
    byFiles.close();
    assert.equal(byFiles.fingerprint256, ca.fingerprint256);

    const leaf = await ca.issue('127.0.0.1');
    await writeFile(join(dir, 'leaf.pem'), leaf.certPem);
    assert.match(await openssl(['verify', '-CAfile', files.certFile, join(dir, 'leaf.pem')]), /: OK/);

    // Go matches the leaf's issuer to the CA's subject byte for byte: skopeo proves it.
    const registry = await startRegistry({ cert: leaf.certPem, key: leaf.keyPem });
    t.after(() => registry.close());
    const certDir = join(dir, 'trust');
    await mkdir(certDir);
    await writeFile(join(certDir, 'ca.crt'), ca.certPem);
    const inspect = await run('skopeo', [
      'inspect',
      '--raw',
      '--cert-dir',
      certDir,
      `docker://127.0.0.1:${registry.port}/x/y:latest`,
    ]);
    assert.equal(inspect.code, 0, inspect.stderr);
  });

  it('traditional encrypted RSA with its own passphrase: needs it', async (t) => {
    const dir = await tempDir(t);
    const files = await originalStyleCa(dir, 'not-foobar', 2048);
    await assert.rejects(loadOrCreateCA(files), { code: 'CA_KEY_PASSPHRASE' });
    const ca = await loadOrCreateCA({ ...files, passphrase: 'not-foobar' });
    ca.close();
    assert.equal(ca.keyType, 'rsa-2048');
  });

  it('PKCS#8 encrypted keys (RSA and EC, made by openssl genpkey) with a passphrase', async (t) => {
    const dir = await tempDir(t);
    for (const [name, keyArgs] of [
      ['rsa', ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048']],
      ['ec', ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384']],
    ] as const) {
      const keyFile = join(dir, `${name}.key`);
      const certFile = join(dir, `${name}.crt`);
      await openssl(['genpkey', ...keyArgs, '-aes-256-cbc', '-pass', 'pass:pkcs8 pass', '-out', keyFile]);
      assert.match(await readFile(keyFile, 'utf8'), /BEGIN ENCRYPTED PRIVATE KEY/);
      const req = ['req', '-new', '-x509', '-days', '30', '-key', keyFile, '-passin', 'pass:pkcs8 pass'];
      req.push('-out', certFile, '-subj', `/CN=byo ${name}`);
      for (const ext of IA_EXT) req.push('-addext', ext);
      await openssl(req);
      const ca = await loadOrCreateCA({ certFile, keyFile, passphrase: 'pkcs8 pass' });
      t.after(() => ca.close());
      assert.equal(ca.keyType, name === 'rsa' ? 'rsa-2048' : 'ecdsa-p384');
      const leaf = await ca.issue('byo.example');
      await writeFile(join(dir, `${name}-leaf.pem`), leaf.certPem);
      assert.match(await openssl(['verify', '-CAfile', certFile, join(dir, `${name}-leaf.pem`)]), /: OK/);
    }
  });

  it('an intermediate CA (file: intermediate then root): leaves are served with the chain', async (t) => {
    const dir = await tempDir(t);
    await mkdir(join(dir, 'root'));
    const root = await opensslSelfSigned(join(dir, 'root'), { subj: '/CN=byo root' });
    const keyFile = join(dir, 'ca.key');
    const csr = join(dir, 'int.csr');
    const intermediate = join(dir, 'int.crt');
    await openssl(
      ['req', '-new', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'].concat([
        '-keyout',
        keyFile,
        '-out',
        csr,
        '-subj',
        '/CN=byo intermediate',
      ]),
    );
    const ext = join(dir, 'ext.cnf');
    await writeFile(
      ext,
      'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n',
    );
    await openssl(
      ['x509', '-req', '-in', csr, '-CA', root.certFile, '-CAkey', root.keyFile, '-CAcreateserial'].concat([
        '-days',
        '30',
        '-extfile',
        ext,
        '-out',
        intermediate,
      ]),
    );
    const certFile = join(dir, 'ca.crt');
    await writeFile(
      certFile,
      (await readFile(intermediate, 'utf8')) + (await readFile(root.certFile, 'utf8')),
    );
    const { chmod } = await import('node:fs/promises');
    await chmod(keyFile, 0o600);

    const ca = await loadOrCreateCA({ certFile, keyFile });
    t.after(() => ca.close());
    assert.match(ca.subject, /CN=byo intermediate/);
    assert.equal(ca.chainPem.match(/BEGIN CERTIFICATE/g)?.length, 2, 'intermediate + root');
    const registry = await startRegistry({
      SNICallback: (name, cb) => {
        ca.secureContext(name).then(
          (ctx) => cb(null, ctx),
          (err: Error) => cb(err),
        );
      },
    });
    t.after(() => registry.close());
    const { connect } = await import('node:tls');
    const rootPem = await readFile(root.certFile, 'utf8');
    const authorized = await new Promise<boolean | string>((resolve) => {
      const socket = connect(
        { host: '127.0.0.1', port: registry.port, servername: 'chain.test', ca: rootPem },
        () => {
          resolve(socket.authorized);
          socket.end();
        },
      );
      socket.on('error', (err) => resolve(err.message));
    });
    assert.equal(authorized, true, 'a client trusting only the root accepts leaf + intermediate');
  });

  it('creates at CA_CRT_FILE / CA_KEY_FILE only when asked (createIfMissing), like the original', async (t) => {
    const dir = await tempDir(t);
    const files = { certFile: join(dir, 'certs', 'my.crt'), keyFile: join(dir, 'keys', 'my.key') };
    await assert.rejects(loadOrCreateCA(files), { code: 'CA_NOT_FOUND' });
    const ca = await loadOrCreateCA({ ...files, createIfMissing: true });
    ca.close();
    assert.equal(ca.origin, 'created');
    assert.equal((await stat(files.keyFile)).mode & 0o777, 0o600);
    const again = await loadOrCreateCA(files);
    again.close();
    assert.equal(again.fingerprint256, ca.fingerprint256);
  });
});
