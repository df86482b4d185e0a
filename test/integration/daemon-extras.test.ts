// More of drp-server as users run it: pushes through the proxy (ALLOW_PUSH), the `ca`
// subcommands, the text log and the original's DEBUG switch, and what the http-mitm-proxy front
// must not do (expose its own CA, print on stdout).
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import tls from 'node:tls';
import { createHarness, pushImage, RunError } from '../harness/index.ts';
import { BIN, certificateVia, registryNamed, startDaemon } from './daemon-lib.ts';

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

test('http-mitm-proxy front: its unused CA sits in a 0700 dir, and stdout stays pure JSON through client resets', async (t) => {
  const h = createHarness(t);
  const ca = await h.testCA();
  const registry = await registryNamed(h, 'registry.test');
  const image = await h.createImage({ layers: [8_000_000] });
  await registry.push(image, 'reset/app:v1');
  const caDir = h.tempDir('ca');
  const env = {
    REGISTRIES: registry.named,
    UPSTREAM_MAPPINGS: 'registry.test=127.0.0.1',
    UPSTREAM_CA_FILE: ca.certPath,
    CACHE_DIR: h.tempDir('cache'),
    CA_DIR: caDir,
  };
  const drp = await startDaemon(h, env);
  const mitmDir = join(caDir, 'http-mitm-proxy');
  assert.equal(statSync(mitmDir).mode & 0o777, 0o700, 'only drp-server user may enter it');
  const mitmKey = join(mitmDir, 'keys', 'ca.private.key');
  const keyBefore = readFileSync(mitmKey, 'utf8');
  // drp never serves or signs with that CA: /ca.crt is drp's own, and so is the leaf's issuer.
  const mitmCa = new X509Certificate(readFileSync(join(mitmDir, 'certs', 'ca.pem')));
  const drpCa = new X509Certificate(drp.caPem);
  assert.notEqual(drpCa.fingerprint256, mitmCa.fingerprint256);
  const leaf = await certificateVia(drp.port, registry.named, drp.caPem);
  assert.equal(leaf.issuer.CN, drpCa.subject.match(/CN=(.*)/)?.[1]);

  // A warm-up pull, then clients that reset their connection in the middle of things.
  await h.pullImage(registry.named, 'reset/app:v1', { proxy: drp.url, certDir: drp.certDir });
  const blob = `/v2/reset/app/blobs/${image.layers[0]!.digest}`;
  await resetMidBody(drp.port, registry.named, drp.caPem, blob);
  await resetMidBody(drp.port, registry.named, drp.caPem, blob);
  await resetAfter(drp.port, `CONNECT ${registry.named} HTTP/1.1\r\nhost: ${registry.named}\r\n\r\n`);
  await resetAfter(drp.port, 'CONNECT 127.0.0.1:9 HTTP/1.1\r\nhost: 127.0.0.1:9\r\n\r\n');
  await resetAfter(drp.port, `GET http://127.0.0.1:${registry.port}/v2/ HTTP/1.1\r\nhost: x\r\n\r\n`);
  await resetAfter(drp.port, 'GET /ca.crt HTTP/1.1\r\nhost: x\r\n\r\n');
  await resetAfter(drp.port, 'garbage\r\n\r\n');
  await resetAfter(
    drp.port,
    'GET / HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n',
  );
  // Requests http-mitm-proxy would answer itself (no Host) or crash on (Host `http://[x`).
  assert.match(await rawAnswer(drp.port, 'GET /healthz HTTP/1.0\r\n\r\n'), /^HTTP\/1\.1 200/);
  assert.match(
    await rawAnswer(drp.port, 'GET /healthz HTTP/1.1\r\nhost: http://[x\r\n\r\n'),
    /^HTTP\/1\.1 200/,
  );
  const pulled = await h.pullImage(registry.named, 'reset/app:v1', { proxy: drp.url, certDir: drp.certDir });
  assert.equal(pulled.manifestDigest, image.manifestDigest);
  await drp.daemon.stop(10_000);

  const notJson = drp.stdout.filter((line) => {
    try {
      return typeof JSON.parse(line) !== 'object';
    } catch {
      return true;
    }
  });
  assert.deepEqual(notJson, [], `stdout carries only JSON lines:\n${drp.daemon.output()}`);
  assert.ok(drp.lines.some((l) => l.type === 'request' && l.status === 200));

  // Made once: a restart keeps it (and its mode).
  const again = await startDaemon(h, env);
  assert.equal(readFileSync(mitmKey, 'utf8'), keyBefore);
  assert.equal(statSync(mitmDir).mode & 0o777, 0o700);
  await again.daemon.stop(10_000);
});

/** GETs `path` through an intercepted CONNECT and resets the TCP connection after the first body bytes. */
async function resetMidBody(port: number, hostPort: string, trust: string, path: string): Promise<void> {
  const raw = net.connect(port, '127.0.0.1');
  raw.on('error', () => {});
  raw.write(`CONNECT ${hostPort} HTTP/1.1\r\nhost: ${hostPort}\r\n\r\n`);
  const [answer] = (await once(raw, 'data')) as [Buffer];
  assert.match(answer.toString(), /^HTTP\/1\.1 200/);
  const secure = tls.connect({ socket: raw, servername: hostPort.replace(/:\d+$/, ''), ca: trust });
  secure.on('error', () => {});
  await once(secure, 'secureConnect');
  secure.write(`GET ${path} HTTP/1.1\r\nhost: ${hostPort}\r\n\r\n`);
  let seen = 0;
  await new Promise<void>((resolve) => {
    secure.on('data', (chunk: Buffer) => {
      seen += chunk.length;
      if (seen > 100_000) {
        raw.resetAndDestroy();
        resolve();
      }
    });
    secure.once('close', () => resolve());
  });
  assert.ok(seen > 100_000, 'the blob was being sent when the client reset');
}

/** Sends one request on a new connection and returns the whole answer. */
async function rawAnswer(port: number, text: string): Promise<string> {
  const socket = net.connect(port, '127.0.0.1');
  let answer = '';
  socket.on('data', (c: Buffer) => {
    answer += c.toString();
    if (answer.includes('\r\n\r\n')) socket.end();
  });
  socket.write(text);
  await once(socket, 'close');
  return answer;
}

/** Sends `text`, waits for the first answer byte (or 300 ms), then resets the connection. */
async function resetAfter(port: number, text: string): Promise<void> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  await once(socket, 'connect');
  socket.write(text);
  await Promise.race([once(socket, 'data'), once(socket, 'close'), new Promise((r) => setTimeout(r, 300))]);
  if (!socket.destroyed) socket.resetAndDestroy();
  await new Promise((r) => setTimeout(r, 50));
}
