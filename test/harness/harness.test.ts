// Lifecycle, cleanup, the test CA and run().
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { createHarness, RunError, run } from './index.ts';

const fixture = join(import.meta.dirname, 'fixtures', 'cleanup.fixture.ts');

// A killed child whose parent already exited is a zombie until init reaps it: count it as dead.
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

const how = { fail: 'throws', exit: 'calls process.exit()', sigkill: 'is SIGKILLed' } as const;
for (const mode of ['fail', 'exit', 'sigkill'] as const) {
  test(`nothing survives a test process that ${how[mode]}`, async (t) => {
    const h = createHarness(t);
    const out = join(h.dir, 'fixture.json');
    const result = await run(process.execPath, ['--import', 'tsx', '--test-reporter=dot', fixture], {
      env: { DRP_FIXTURE_OUT: out, DRP_FIXTURE_MODE: mode, DRP_TEST_TMPDIR: h.dir, DRP_TEST_KEEP: undefined },
      check: false,
      timeoutMs: 30_000,
    });
    assert.notEqual(result.code, 0, 'the fixture test failed');
    const info = JSON.parse(readFileSync(out, 'utf8')) as { pids: number[]; dirs: string[] };
    assert.equal(info.pids.length, 2);
    // The exit hook kills synchronously, the reaper (after SIGKILL) within moments.
    const gone = () => !info.pids.some(alive) && !info.dirs.some((d) => existsSync(d));
    for (let i = 0; i < 250 && !gone(); i++) await new Promise((r) => setTimeout(r, 20));
    for (const pid of info.pids) assert.equal(alive(pid), false, `pid ${pid} still alive`);
    for (const dir of info.dirs) assert.equal(existsSync(dir), false, `${dir} still exists`);
  });
}

test('tempDir() gives fresh dirs inside h.dir; defer() runs before removal', async () => {
  const h = createHarness();
  const a = h.tempDir('x y');
  const b = h.tempDir('x y');
  assert.notEqual(a, b);
  assert.ok(a.startsWith(`${h.dir}/`));
  assert.ok(existsSync(a));
  const order: string[] = [];
  h.defer(() => {
    order.push(`first:${existsSync(a)}`);
  });
  h.defer(() => {
    order.push('second');
  });
  const sleeper = h.spawn('sleep', ['600']);
  assert.ok(sleeper.running());
  await h.close();
  assert.deepEqual(order, ['second', 'first:true']);
  assert.equal(sleeper.running(), false);
  assert.equal(existsSync(h.dir), false);
});

test('the test CA issues server certificates with DNS and IP SANs', async (t) => {
  const h = createHarness(t);
  const ca = await h.testCA();
  assert.equal(await h.testCA(), ca, 'one CA per harness');
  const leaf = await ca.issue(['registry.test', 'localhost', '127.0.0.1', '::1']);
  const cert = new X509Certificate(leaf.certPem);
  const caCert = new X509Certificate(ca.certPem);
  assert.ok(cert.checkIssued(caCert));
  assert.ok(cert.verify(caCert.publicKey));
  assert.equal(caCert.ca, true);
  assert.equal(cert.ca, false);
  assert.ok(cert.checkHost('registry.test'));
  assert.ok(cert.checkIP('127.0.0.1'));
  assert.match(cert.subjectAltName ?? '', /IP Address:0:0:0:0:0:0:0:1/i);
  assert.equal(readFileSync(join(ca.certDir, 'ca.crt'), 'utf8'), ca.certPem);
  assert.ok(existsSync(leaf.keyPath));
});

test('run() captures output, reports failures with stderr, and enforces timeouts', async () => {
  const ok = await run('sh', ['-c', 'echo out; echo err >&2'], {});
  assert.equal(ok.stdout, 'out\n');
  assert.equal(ok.stderr, 'err\n');
  assert.equal(ok.code, 0);

  const input = await run('cat', [], { input: 'hello' });
  assert.equal(input.stdout, 'hello');

  const env = await run('sh', ['-c', 'echo "$DRP_X"'], { env: { DRP_X: 'yes' } });
  assert.equal(env.stdout, 'yes\n');

  await assert.rejects(run('sh', ['-c', 'echo boom >&2; exit 7']), (e: unknown) => {
    assert.ok(e instanceof RunError);
    assert.equal(e.result.code, 7);
    assert.match(e.message, /exit 7: sh -c .*\n--- stderr ---\nboom/);
    return true;
  });
  const soft = await run('sh', ['-c', 'exit 3'], { check: false });
  assert.equal(soft.code, 3);

  const started = Date.now();
  await assert.rejects(run('sleep', ['30'], { timeoutMs: 200 }), /timed out after 200 ms/);
  assert.ok(Date.now() - started < 5000);
  await assert.rejects(run('/nonexistent/binary', []), /ENOENT/);
});
