// A throwaway certificate authority for tests, made with the openssl CLI (deliberately not
// with @drp/ca, which is under test). ECDSA P-256 keeps generation to a few milliseconds.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { run } from './process.ts';

export interface IssuedCert {
  /** DNS names and IP addresses in the subjectAltName (the first is also the CN). */
  names: string[];
  certPath: string;
  keyPath: string;
  certPem: string;
  keyPem: string;
}

export interface TestCA {
  dir: string;
  certPath: string;
  keyPath: string;
  certPem: string;
  keyPem: string;
  /**
   * A directory holding only `ca.crt`: what skopeo's `--src-cert-dir`/`--dest-cert-dir`,
   * podman's `certs.d/<host>` and containerd's `--tlscacert` (use `certPath`) want.
   */
  certDir: string;
  /** Issues a server certificate (serverAuth) for DNS names and/or IP addresses. */
  issue(names: string[]): Promise<IssuedCert>;
}

/** Creates a CA under `dir` (created if missing). */
export async function createTestCA(dir: string, commonName = 'drp test CA'): Promise<TestCA> {
  await mkdir(dir, { recursive: true });
  const certPath = join(dir, 'ca.crt');
  const keyPath = join(dir, 'ca.key');
  await run('openssl', [
    'req',
    '-x509',
    '-new',
    '-nodes',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-keyout',
    keyPath,
    '-out',
    certPath,
    '-days',
    '7',
    '-subj',
    `/CN=${commonName}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  const certDir = join(dir, 'certs');
  await mkdir(certDir, { recursive: true });
  const certPem = await readFile(certPath, 'utf8');
  await writeFile(join(certDir, 'ca.crt'), certPem);
  const keyPem = await readFile(keyPath, 'utf8');
  let serial = 0;

  async function issue(names: string[]): Promise<IssuedCert> {
    if (names.length === 0) throw new Error('issue() needs at least one name');
    serial += 1;
    const base = join(dir, `leaf-${serial}`);
    const san = names.map((n) => (isIP(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
    const ext = [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
      `subjectAltName=${san}`,
    ].join('\n');
    await writeFile(`${base}.ext`, `${ext}\n`);
    await run('openssl', [
      'req',
      '-new',
      '-nodes',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-keyout',
      `${base}.key`,
      '-out',
      `${base}.csr`,
      '-subj',
      `/CN=${names[0]}`,
    ]);
    await run('openssl', [
      'x509',
      '-req',
      '-in',
      `${base}.csr`,
      '-CA',
      certPath,
      '-CAkey',
      keyPath,
      '-set_serial',
      String(Date.now() * 1000 + serial),
      '-days',
      '7',
      '-extfile',
      `${base}.ext`,
      '-out',
      `${base}.crt`,
    ]);
    return {
      names: [...names],
      certPath: `${base}.crt`,
      keyPath: `${base}.key`,
      certPem: await readFile(`${base}.crt`, 'utf8'),
      keyPem: await readFile(`${base}.key`, 'utf8'),
    };
  }

  return { dir, certPath, keyPath, certPem, keyPem, certDir, issue };
}
