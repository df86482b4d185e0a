// The container image's entrypoint (image/entrypoint.sh), run directly: no container engine can
// run an image on the test machines (podman run fails there), so what the entrypoint does is
// tested as the image would run it: as root, against root-owned volumes, starting the real
// drp-server. Needs root (as the end-to-end tests do).
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createHarness, type Harness } from '../harness/index.ts';

const ROOT = new URL('../..', import.meta.url).pathname;
const ENTRYPOINT = join(ROOT, 'image/entrypoint.sh');
const BIN = join(ROOT, 'packages/server/bin/drp-server.js');
const DOCKERFILE = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const FINAL_STAGE = DOCKERFILE.slice(DOCKERFILE.lastIndexOf('\nFROM '));
/** The unprivileged user of the image (`node` in the Node base images). */
const UID = 1000;
/** What the image sets: the daemon gets the same stop budget here. */
const SHUTDOWN_TIMEOUT = /SHUTDOWN_TIMEOUT=(\S+)/.exec(FINAL_STAGE)?.[1] ?? '';

interface Status {
  uid: number[];
  gid: number[];
  groups: string;
  capEff: string;
  noNewPrivs: string;
}

function statusOf(pid: number): Status {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => new RegExp(`^${name}:[ \\t]*(.*)$`, 'm').exec(text)?.[1]?.trim() ?? '';
  return {
    uid: field('Uid').split(/\s+/).map(Number),
    gid: field('Gid').split(/\s+/).map(Number),
    groups: field('Groups'),
    capEff: field('CapEff'),
    noNewPrivs: field('NoNewPrivs'),
  };
}

/** Volumes as dockerd or the original image leave them: root-owned, 0700, CA key 0600. */
async function rootOwnedVolumes(h: Harness): Promise<{ cache: string; ca: string; fingerprint: string }> {
  const base = h.tempDir('volumes');
  // The harness dir is private to root; the unprivileged user must be able to pass through.
  chmodSync(h.dir, 0o711);
  chmodSync(base, 0o711);
  const cache = join(base, 'docker_mirror_cache');
  const ca = join(base, 'ca');
  mkdirSync(join(cache, 'from-the-original'), { recursive: true, mode: 0o700 });
  writeFileSync(join(cache, 'from-the-original', 'entry'), 'x', { mode: 0o600 });
  mkdirSync(ca, { mode: 0o700 });
  // A CA made by root, like the original's /ca/ca.key (0600, root).
  const made = await h.run(process.execPath, [BIN, 'ca', 'fingerprint'], { env: { CA_DIR: ca } });
  assert.equal(statSync(join(ca, 'ca.key')).uid, 0);
  return { cache, ca, fingerprint: made.stdout.trim() };
}

describe('image entrypoint', () => {
  it('is what the Dockerfile runs: Node 24, root entrypoint, SIGTERM, a stop budget under 10 s', () => {
    assert.match(DOCKERFILE, /^ARG NODE_IMAGE=node:24-bookworm-slim$/m);
    assert.match(FINAL_STAGE, /^ENTRYPOINT \["\/app\/image\/entrypoint\.sh"\]$/m);
    assert.doesNotMatch(FINAL_STAGE, /^USER /m, 'starts as root; the entrypoint drops privileges');
    assert.match(FINAL_STAGE, /^STOPSIGNAL SIGTERM$/m);
    assert.match(FINAL_STAGE, /^HEALTHCHECK [\s\S]*?\/healthz/m);
    assert.match(
      FINAL_STAGE,
      /^LABEL [\s\S]*org\.opencontainers\.image\.source="https:\/\/github\.com\/drp-proxy\/drp"/m,
    );
    assert.ok(statSync(ENTRYPOINT).mode & 0o111, 'entrypoint is executable');
    const seconds = Number(/^(\d+)s$/.exec(SHUTDOWN_TIMEOUT)?.[1]);
    assert.ok(
      seconds > 0 && seconds < 10,
      `SHUTDOWN_TIMEOUT ${SHUTDOWN_TIMEOUT} fits docker's 10 s stop timeout`,
    );
  });

  it('as root: hands root-owned volumes to uid 1000, drops privileges, serves the existing CA, stops on SIGTERM', async (t) => {
    assert.equal(process.getuid?.(), 0, 'this test starts the entrypoint as root, as docker does');
    const h = createHarness(t);
    const volumes = await rootOwnedVolumes(h);
    const lines: Record<string, unknown>[] = [];
    let started: (line: Record<string, unknown>) => void = () => {};
    const startup = new Promise<Record<string, unknown>>((resolve) => {
      started = resolve;
    });
    const daemon = h.spawn(ENTRYPOINT, [], {
      env: {
        CACHE_DIR: volumes.cache,
        CA_DIR: volumes.ca,
        PORT: '0',
        BIND: '127.0.0.1',
        SHUTDOWN_TIMEOUT,
      },
      onLine(line, stream) {
        if (stream !== 'stdout' || !line.startsWith('{')) return;
        const parsed = JSON.parse(line) as Record<string, unknown>;
        lines.push(parsed);
        if (parsed.type === 'startup') started(parsed);
      },
    });
    const info = await Promise.race([
      startup,
      daemon.exited.then((code) => {
        throw new Error(`entrypoint exited (${code}):\n${daemon.output()}`);
      }),
    ]);

    // exec all the way down: the process started is drp-server itself, running as uid 1000.
    const cmdline = readFileSync(`/proc/${daemon.pid}/cmdline`, 'utf8').split('\0');
    assert.ok(cmdline[1]?.endsWith('packages/server/bin/drp-server.js'), cmdline.join(' '));
    const status = statusOf(daemon.pid);
    assert.deepEqual(status.uid, [UID, UID, UID, UID]);
    assert.deepEqual(status.gid, [UID, UID, UID, UID]);
    assert.equal(status.groups, '');
    assert.equal(status.capEff, '0000000000000000');
    assert.equal(status.noNewPrivs, '1');

    // The volumes changed hands, to the last file; the root-made CA was loaded, not replaced.
    for (const path of [
      volumes.cache,
      join(volumes.cache, 'from-the-original', 'entry'),
      volumes.ca,
      join(volumes.ca, 'ca.key'),
    ]) {
      assert.equal(statSync(path).uid, UID, path);
      assert.equal(statSync(path).gid, UID, path);
    }
    assert.equal(statSync(join(volumes.ca, 'ca.key')).mode & 0o777, 0o600);
    assert.equal(info.ca_origin, 'loaded');
    assert.equal(info.ca_fingerprint, volumes.fingerprint);
    const res = await fetch(`http://127.0.0.1:${Number(info.port)}/ca.crt`);
    assert.equal(await res.text(), readFileSync(join(volumes.ca, 'ca.crt'), 'utf8'));

    // docker stop: SIGTERM to PID 1 reaches drp-server's own handler, which stops cleanly.
    process.kill(daemon.pid, 'SIGTERM');
    assert.equal(await daemon.exited, 0);
    const shutdown = lines.filter((l) => l.type === 'shutdown').map((l) => String(l.msg));
    assert.match(shutdown[0] ?? '', /^SIGTERM: .*up to \d+ ms/);
    assert.match(shutdown[1] ?? '', /^stopped after \d+ ms/);
  });

  it('as root again: a second start changes no ownership (nothing left to hand over)', async (t) => {
    const h = createHarness(t);
    const volumes = await rootOwnedVolumes(h);
    await h.run(ENTRYPOINT, ['ca', 'fingerprint'], { env: { CACHE_DIR: volumes.cache, CA_DIR: volumes.ca } });
    const before = statSync(join(volumes.ca, 'ca.key')).ctimeMs;
    // `ca fingerprint` writes nothing, so an unchanged ctime on the key means no second chown.
    const again = await h.run(ENTRYPOINT, ['ca', 'fingerprint'], {
      env: { CACHE_DIR: volumes.cache, CA_DIR: volumes.ca },
    });
    assert.equal(again.stdout.trim(), volumes.fingerprint);
    assert.equal(statSync(join(volumes.ca, 'ca.key')).ctimeMs, before);
  });

  it('started as uid 1000 (docker run --user 1000:1000): runs drp-server directly', async (t) => {
    const h = createHarness(t);
    const out = await h.run('setpriv', [
      `--reuid=${UID}`,
      `--regid=${UID}`,
      '--clear-groups',
      ENTRYPOINT,
      '--version',
    ]);
    assert.match(out.stdout, /^\d+\.\d+\.\d+\n$/);
  });

  it('a read-only volume it cannot hand over is reported, and drp-server names the file it cannot use', async (t) => {
    const h = createHarness(t);
    const volumes = await rootOwnedVolumes(h);
    // A read-only bind mount of the CA volume, in a private mount namespace.
    const script = `mount --bind "$CA_DIR" "$CA_DIR" && mount -o remount,bind,ro "$CA_DIR" && exec "$0" ca fingerprint`;
    const result = await h.run(
      'unshare',
      ['--mount', '--propagation', 'private', 'sh', '-c', script, ENTRYPOINT],
      {
        env: { CACHE_DIR: volumes.cache, CA_DIR: volumes.ca },
        check: false,
      },
    );
    assert.match(result.stderr, /drp entrypoint: could not give .*\/ca to uid 1000 \(read-only volume\?\)/);
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, /drp-server: CA: .*ca\.key/);
  });
});
