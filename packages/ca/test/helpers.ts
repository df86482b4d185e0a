// Shared by the @drp/ca tests: temporary directories and the openssl CLI (an independent
// implementation to check drp's certificates against, and to make bring-your-own CAs).
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command without a shell; never throws on a non-zero exit (the caller asserts). */
export function run(
  cmd: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
) {
  return new Promise<RunResult>((resolve) => {
    execFile(
      cmd,
      args,
      { env: options.env ?? process.env, timeout: options.timeoutMs ?? 60_000, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}

export async function openssl(args: string[]): Promise<string> {
  const result = await run('openssl', args);
  if (result.code !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${result.stderr}`);
  return result.stdout;
}

/** A fresh directory removed after the test. */
export async function tempDir(t: TestContext, prefix = 'drp-ca-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A fixed clock that tests can move. */
export function clock(start: Date): { now: () => Date; advance(ms: number): void; set(date: Date): void } {
  let current = start.getTime();
  return {
    now: () => new Date(current),
    advance(ms: number) {
      current += ms;
    },
    set(date: Date) {
      current = date.getTime();
    },
  };
}

export const DAY = 86_400_000;

/**
 * A self-signed certificate made by openssl, for bring-your-own and refusal tests.
 * `newkey` as openssl req takes it (e.g. `rsa:2048`, `ec`, `ed25519`); `ext` are -addext values.
 */
export async function opensslSelfSigned(
  dir: string,
  options: { newkey?: string; pkeyopt?: string[]; ext?: string[]; days?: number; subj?: string } = {},
): Promise<{ certFile: string; keyFile: string }> {
  const certFile = join(dir, 'ca.crt');
  const keyFile = join(dir, 'ca.key');
  const args = ['req', '-x509', '-new', '-nodes', '-newkey', options.newkey ?? 'ec'];
  for (const opt of options.pkeyopt ?? (options.newkey ? [] : ['ec_paramgen_curve:prime256v1'])) {
    args.push('-pkeyopt', opt);
  }
  args.push('-keyout', keyFile, '-out', certFile, '-days', String(options.days ?? 30));
  args.push('-subj', options.subj ?? '/O=ME/OU=IT/CN=openssl test CA');
  for (const ext of options.ext ?? [
    'basicConstraints=critical,CA:TRUE',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]) {
    args.push('-addext', ext);
  }
  await openssl(args);
  const { chmod } = await import('node:fs/promises');
  await chmod(keyFile, 0o600);
  return { certFile, keyFile };
}

export interface TestRegistry {
  port: number;
  close(): Promise<void>;
}

/**
 * A tiny HTTPS "registry": /v2/ answers 200 {} and any manifest GET answers a minimal OCI
 * manifest, so that curl and skopeo complete a request once TLS trust works. TLS comes from
 * `tls` (SNICallback and/or a default cert).
 */
export async function startRegistry(
  tlsOptions: import('node:tls').TlsOptions,
  host = '127.0.0.1',
): Promise<TestRegistry> {
  const { createServer } = await import('node:https');
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: {
      mediaType: 'application/vnd.oci.image.config.v1+json',
      digest: `sha256:${'0'.repeat(64)}`,
      size: 2,
    },
    layers: [],
  });
  const server = createServer(tlsOptions, (req, res) => {
    if (req.url === '/v2/' || req.url === '/v2') {
      res.writeHead(200, {
        'content-type': 'application/json',
        'docker-distribution-api-version': 'registry/2.0',
      });
      res.end('{}');
    } else if (req.url?.includes('/manifests/')) {
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
      res.end(req.method === 'HEAD' ? undefined : manifest);
    } else {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"errors":[{"code":"NOT_FOUND","message":"not found"}]}');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
