// More of drp-server as users run it: pushes through the proxy (ALLOW_PUSH), the `ca`
// subcommands, the text log and the original's DEBUG switch.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { createHarness, pushImage, RunError } from '../harness/index.ts';
import { BIN, registryNamed, startDaemon } from './daemon-lib.ts';

test('push through the proxy: refused with 405 by default, streamed through with ALLOW_PUSH=true', async (t) => {
  const h = createHarness(t);
  const ca = await h.testCA();
  const registry = await registryNamed(h, 'registry.test');
  const image = await h.createImage({ layers: [8_000_000, 50_000] });
  const env = {
    REGISTRIES: registry.named,
    UPSTREAM_MAPPINGS: 'registry.test=127.0.0.1',
    UPSTREAM_CA_FILE: ca.certPath,
    CACHE_DIR: h.tempDir('cache'),
    CA_DIR: h.tempDir('ca'),
  };

  const closed = await startDaemon(h, env);
  const through = (drp: typeof closed) => ({
    env: { HTTPS_PROXY: drp.url, https_proxy: drp.url, NO_PROXY: '', no_proxy: '' },
    certDir: drp.certDir,
  });
  await assert.rejects(pushImage(image, registry.named, 'pushed/app:v1', through(closed)), (e: unknown) => {
    assert.ok(e instanceof RunError);
    return true;
  });
  assert.ok(closed.requests({ status: 405 }).length >= 1, JSON.stringify(closed.lines));
  await closed.daemon.stop(10_000);

  const open = await startDaemon(h, { ...env, ALLOW_PUSH: 'true', CLIENT_BODY_TIMEOUT: '5s' });
  await pushImage(image, registry.named, 'pushed/app:v1', through(open));
  // The registry has it: pull it directly, not through drp.
  const pulled = await h.pullImage(registry.hostPort, 'pushed/app:v1', { certDir: ca.certDir });
  assert.equal(pulled.manifestDigest, image.manifestDigest);
  assert.ok(open.requests({ request_type: 'upload' }).length >= 2, JSON.stringify(open.lines));
});

test('drp-server ca print / fingerprint / rotate', async (t) => {
  const h = createHarness(t);
  const caDir = h.tempDir('ca');
  const env = { CA_DIR: caDir, CACHE_DIR: h.tempDir('cache') };
  const printed = await h.run(process.execPath, [BIN, 'ca', 'print'], { env });
  const cert = new X509Certificate(printed.stdout);
  assert.equal(printed.stdout, readFileSync(join(caDir, 'ca.crt'), 'utf8'));
  const fingerprint = await h.run(process.execPath, [BIN, 'ca', 'fingerprint'], { env });
  assert.equal(fingerprint.stdout.trim(), cert.fingerprint256);

  const rotated = await h.run(process.execPath, [BIN, 'ca', 'rotate'], { env });
  assert.match(rotated.stdout, /new CA .*SHA-256/);
  const after = await h.run(process.execPath, [BIN, 'ca', 'fingerprint'], { env });
  assert.notEqual(after.stdout.trim(), cert.fingerprint256);
  assert.ok(readdirSync(caDir).some((f) => f.startsWith('ca.crt.') && f.endsWith('.bak')));

  const daemon = await startDaemon(h, env);
  assert.equal(daemon.lines.find((l) => l.type === 'startup')?.ca_fingerprint, after.stdout.trim());
});

test('LOG_FORMAT=text and DEBUG=true: readable lines on stdout, drp:* debug output on stderr', async (t) => {
  const h = createHarness(t);
  const lines: { line: string; stream: string }[] = [];
  const daemon = h.spawn(process.execPath, [BIN], {
    env: {
      PORT: '0',
      BIND: '127.0.0.1',
      LOG_FORMAT: 'text',
      DEBUG: 'true',
      CACHE_DIR: h.tempDir('cache'),
      CA_DIR: h.tempDir('ca'),
    },
    onLine: (line, stream) => lines.push({ line, stream }),
  });
  const deadline = Date.now() + 15_000;
  while (!lines.some((l) => l.line.includes('STARTUP:')) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  const startup = lines.find((l) => l.line.includes('STARTUP:'));
  assert.ok(startup, daemon.output());
  assert.equal(startup.stream, 'stdout');
  assert.match(startup.line, /listening on 127\.0\.0\.1:\d+/);
  assert.ok(
    lines.some((l) => l.stream === 'stderr' && /drp:ca/.test(l.line)),
    'debug output on stderr',
  );
  assert.ok(lines.every((l) => l.stream === 'stderr' || !l.line.startsWith('{')));
  await daemon.stop(10_000);
  assert.equal(await daemon.exited, 0);
});
