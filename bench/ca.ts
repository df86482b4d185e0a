// Benchmark of @drp/ca: CA creation, leaf issuance latency (median/p99 over 200 distinct
// names), event-loop lag while issuing, and, for reference, the same leaf made with
// @peculiar/x509's generator (what drp's first version did).
//   node --import tsx bench/ca.ts            (prints a markdown table, then one JSON line)
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type CaKeyType,
  type CaOptions,
  type CertificateAuthority,
  loadOrCreateCA,
} from '../packages/ca/src/index.ts';
import { crypto, exportPrivateKeyPem, generateKeyPair } from '../packages/ca/src/keys.ts';
import { loadX509 } from '../packages/ca/src/x509.ts';

const x509 = loadX509();

const NAMES = 200;

interface Stats {
  median: number;
  p99: number;
  max: number;
}

function stats(samples: number[]): Stats {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) =>
    sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? Number.NaN;
  return { median: round(at(0.5)), p99: round(at(0.99)), max: round(sorted.at(-1) ?? Number.NaN) };
}

const round = (n: number) => Math.round(n * 100) / 100;

/** Runs `fn` while a 1 ms interval measures how late the event loop runs it. */
async function withLagProbe<T>(
  fn: () => Promise<T>,
): Promise<{ result: T; maxLagMs: number; p99LagMs: number }> {
  const lags: number[] = [];
  let last = performance.now();
  const probe = setInterval(() => {
    const now = performance.now();
    lags.push(Math.max(0, now - last - 1));
    last = now;
  }, 1);
  try {
    const result = await fn();
    return { result, maxLagMs: round(Math.max(0, ...lags)), p99LagMs: stats(lags).p99 };
  } finally {
    clearInterval(probe);
  }
}

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'drp-bench-ca-'));
}

async function caCreation(caKeyType: CaKeyType, runs: number): Promise<Stats> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const dir = await tempDir();
    const started = performance.now();
    const ca = await loadOrCreateCA({ dir, caKeyType }); // includes the fsync'd writes
    times.push(performance.now() - started);
    ca.close();
    await rm(dir, { recursive: true, force: true });
  }
  return stats(times);
}

async function withCa<T>(
  options: Partial<CaOptions>,
  fn: (ca: CertificateAuthority) => Promise<T>,
): Promise<T> {
  const dir = await tempDir();
  const ca = await loadOrCreateCA({ dir, ...options });
  try {
    return await fn(ca);
  } finally {
    ca.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** One issuance at a time over 200 names never seen before: the latency a first handshake waits. */
async function sequential(ca: CertificateAuthority, prefix: string) {
  for (let i = 0; i < 20; i++) await ca.issue(`warm-${i}.${prefix}.example`);
  return withLagProbe(async () => {
    const times: number[] = [];
    for (let i = 0; i < NAMES; i++) {
      const started = performance.now();
      await ca.issue(`host-${i}.${prefix}.example`);
      times.push(performance.now() - started);
    }
    return stats(times);
  });
}

/** 200 names requested at once: total time and how much the event loop suffers. */
async function burst(ca: CertificateAuthority, prefix: string) {
  const started = performance.now();
  const { maxLagMs, p99LagMs } = await withLagProbe(() =>
    Promise.all(Array.from({ length: NAMES }, (_, i) => ca.issue(`burst-${i}.${prefix}.example`))),
  );
  return { totalMs: round(performance.now() - started), maxLagMs, p99LagMs };
}

/** The reference: the same leaf built with @peculiar/x509's generator and ASN.1 classes. */
async function peculiarReference() {
  const caKeys = await generateKeyPair('ecdsa-p256');
  const caCert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      name: 'CN=bench CA',
      keys: caKeys,
      signingAlgorithm: caKeys.signingAlgorithm,
      extensions: [new x509.BasicConstraintsExtension(true, 0, true)],
    },
    crypto,
  );
  const issue = async (name: string) => {
    const keys = await generateKeyPair('ecdsa-p256');
    const cert = await x509.X509CertificateGenerator.create(
      {
        subject: [{ O: ['drp'] }, { CN: [name] }],
        issuer: caCert.subjectName,
        notAfter: new Date(Date.now() + 90 * 86_400_000),
        publicKey: keys.publicKey,
        signingKey: caKeys.privateKey,
        signingAlgorithm: caKeys.signingAlgorithm,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
          new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: name }]),
          await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey, false, crypto),
          await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
        ],
      },
      crypto,
    );
    return { certPem: cert.toString('pem'), keyPem: await exportPrivateKeyPem(keys.privateKey) };
  };
  for (let i = 0; i < 20; i++) await issue(`warm-${i}.example`);
  const seq = await withLagProbe(async () => {
    const times: number[] = [];
    for (let i = 0; i < NAMES; i++) {
      const started = performance.now();
      await issue(`host-${i}.example`);
      times.push(performance.now() - started);
    }
    return stats(times);
  });
  const started = performance.now();
  const all = await withLagProbe(() =>
    Promise.all(Array.from({ length: NAMES }, (_, i) => issue(`b-${i}.example`))),
  );
  return {
    sequential: seq.result,
    sequentialMaxLagMs: seq.maxLagMs,
    burst: { totalMs: round(performance.now() - started), maxLagMs: all.maxLagMs, p99LagMs: all.p99LagMs },
  };
}

async function main(): Promise<void> {
  const creation = {
    'ecdsa-p256': await caCreation('ecdsa-p256', 20),
    'rsa-3072': await caCreation('rsa-3072', 5),
    'rsa-4096': await caCreation('rsa-4096', 5),
  };
  const restart = await (async () => {
    const dir = await tempDir();
    (await loadOrCreateCA({ dir })).close();
    const times: number[] = [];
    for (let i = 0; i < 20; i++) {
      const started = performance.now();
      (await loadOrCreateCA({ dir })).close();
      times.push(performance.now() - started);
    }
    await rm(dir, { recursive: true, force: true });
    return stats(times);
  })();

  const scenarios = {
    'ecdsa-p256 CA, ecdsa-p256 leaves (default)': {},
    'rsa-4096 CA (the original), ecdsa-p256 leaves': { caKeyType: 'rsa-4096' },
    'ecdsa-p256 CA, rsa-2048 leaves': { leafKeyType: 'rsa-2048' },
  } satisfies Record<string, Partial<CaOptions>>;
  const leaves: Record<string, unknown> = {};
  for (const [label, options] of Object.entries(scenarios)) {
    leaves[label] = await withCa(options, async (ca) => {
      const seq = await sequential(ca, 's');
      const cached = await withLagProbe(async () => {
        const started = performance.now();
        for (let i = 0; i < NAMES; i++) await ca.issue(`host-${i}.s.example`);
        return round(((performance.now() - started) * 1000) / NAMES);
      });
      const ctx = performance.now();
      await ca.secureContext('context.example');
      const firstContextMs = round(performance.now() - ctx);
      return {
        issue: seq.result,
        sequentialMaxLagMs: seq.maxLagMs,
        burst: await burst(ca, 'b'),
        cachedIssueMicros: cached.result,
        firstSecureContextMs: firstContextMs,
      };
    });
  }
  const reference = await peculiarReference();

  const d = leaves['ecdsa-p256 CA, ecdsa-p256 leaves (default)'] as {
    issue: Stats;
    burst: { totalMs: number; maxLagMs: number };
    sequentialMaxLagMs: number;
  };
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const lines = [
    `| @drp/ca (${cpus().length} × ${cpu}, Node ${process.versions.node}) | median | p99 |`,
    '| --- | --- | --- |',
    ...Object.entries(creation).map(
      ([k, s]) => `| CA creation ${k} (incl. fsync'd files) | ${s.median} ms | ${s.p99} ms |`,
    ),
    `| CA load on restart | ${restart.median} ms | ${restart.p99} ms |`,
    ...Object.entries(leaves).map(([k, v]) => {
      const s = (v as { issue: Stats }).issue;
      return `| leaf issue, ${k}, ${NAMES} distinct names | ${s.median} ms | ${s.p99} ms |`;
    }),
    `| leaf issue, @peculiar/x509 generator (reference) | ${reference.sequential.median} ms | ${reference.sequential.p99} ms |`,
    '',
    `**leaf issuance: median ${d.issue.median} ms, p99 ${d.issue.p99} ms (target < 10 ms); ${NAMES} at once: ${d.burst.totalMs} ms, ` +
      `max event-loop lag ${d.burst.maxLagMs} ms (x509 generator: ${reference.burst.maxLagMs} ms); CA creation ${creation['ecdsa-p256'].median} ms**`,
  ];
  process.stdout.write(`${lines.join('\n')}\n\n`);
  process.stdout.write(
    `${JSON.stringify({ bench: 'ca', node: process.version, cpus: cpus().length, cpu, creation, restart, leaves, reference })}\n`,
  );
}

await main();
