/**
 * A full disk: the cache directory is a 20 MiB tmpfs (mounted for the test; skipped when the
 * process may not mount), the blob is bigger. The fill falls back to pass-through: clients get
 * every byte, the store is left without the blob, and the fill is reported as skipped.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { blobPath, blobServer, makeBlob, startFront, startUpstream, until } from './blob-helpers.ts';

function mountTmpfs(dir: string, size: string): boolean {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('full disk', () => {
  test('ENOSPC while filling: every client still gets the full, correct bytes; nothing is stored', async (t) => {
    const mountPoint = mkdtempSync(join(tmpdir(), 'drp-enospc-'));
    if (!mountTmpfs(mountPoint, '20m')) {
      rmSync(mountPoint, { recursive: true, force: true });
      t.skip('cannot mount a tmpfs here (needs root)');
      return;
    }
    // Registered first, so it runs after the servers and caches below have closed.
    t.after(() => {
      execFileSync('umount', ['-l', mountPoint]);
      rmSync(mountPoint, { recursive: true, force: true });
    });
    const cacheDir = join(mountPoint, 'cache');
    const blob = makeBlob(30 * 1024 * 1024);
    const upstream = await startUpstream(t, blobServer(new Map([[blob.digest, blob.data]])));
    const front = await startFront(t, upstream.port, { cacheDir });
    const skipped: string[] = [];
    front.cache.events.on('store-skipped', (e) => skipped.push(e.reason));

    const [a, b] = await Promise.all([front.get(blobPath(blob.digest)), front.get(blobPath(blob.digest))]);
    for (const r of [a, b]) {
      assert.equal(r.status, 200);
      assert.equal(r.complete, true);
      assert.ok(r.body.equals(blob.data), 'bytes intact');
    }
    assert.equal(upstream.count('GET'), 1);
    assert.deepEqual(skipped, ['ENOSPC']);
    assert.equal(front.cache.stats().entries, 0);
    // The partial spool file is gone: the disk is usable again.
    assert.deepEqual(readdirSync(join(cacheDir, 'drp-spool')), []);

    // A smaller blob still caches afterwards.
    const small = makeBlob(1024 * 1024);
    const upstream2 = await startUpstream(t, blobServer(new Map([[small.digest, small.data]])));
    const front2 = await startFront(t, upstream2.port, { cacheDir });
    const r = await front2.get(blobPath(small.digest));
    assert.ok(r.body.equals(small.data));
    await until(() => front2.cache.stats().entries === 1);
  });
});
