// The store from outside (offline.ts, what `drp-server cache` uses) next to a BlobStore that
// keeps serving the same directory: removals reach the running store, scrub finds corruption.
import assert from 'node:assert/strict';
import {
  appendFileSync,
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readSync,
  rmSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { BlobStore } from '../src/store/blob-store.ts';
import { blobDigest, contentPath } from '../src/store/digest.ts';
import { listStoredEntries, removeStoredEntries, verifyStoredEntry } from '../src/store/offline.ts';
import { noteRemovals, REMOVAL_NOTES_FILE, RemovalNotesReader } from '../src/store/removal-notes.ts';
import { makeBlob, tempDir } from './blob-helpers.ts';

function flipByte(path: string, at: number): void {
  const fd = openSync(path, 'r+');
  const byte = Buffer.alloc(1);
  readSync(fd, byte, 0, 1, at);
  byte[0] = (byte[0] ?? 0) ^ 0xff;
  writeSync(fd, byte, 0, 1, at);
  closeSync(fd);
}

describe('store tools', () => {
  test('list, verify and remove from outside; the running store forgets removed entries', async (t) => {
    const dir = tempDir(t);
    const store = await BlobStore.open({ dir, maxSizeBytes: 1 << 30, inactiveMs: 0, removalPollMs: 50 });
    t.after(() => store.close());
    const manifest = makeBlob(300);
    const layer = makeBlob(5000);
    await store.putBuffer(manifest.digest, manifest.data, {
      'content-type': 'application/vnd.oci.image.manifest.v1+json',
    });
    await store.putBuffer(layer.digest, layer.data);

    const listed = await listStoredEntries(dir);
    assert.deepEqual(
      listed.map((e) => [e.digest, e.kind, e.size]).sort(),
      [
        [manifest.digest, 'manifest', 300],
        [layer.digest, 'blob', 5000],
      ].sort(),
    );
    for (const e of listed) assert.equal(await verifyStoredEntry(e), 'ok');

    flipByte(contentPath(dir, blobDigest(layer.digest)), 10);
    const corrupt = listed.find((e) => e.digest === layer.digest);
    assert.equal(await verifyStoredEntry(corrupt ?? { digest: '', path: '', size: 0 }), 'corrupt');

    const result = await removeStoredEntries(dir, [layer.digest, `sha256:${'1'.repeat(64)}`]);
    assert.deepEqual(result, { removed: [layer.digest], absent: [`sha256:${'1'.repeat(64)}`] });
    assert.equal(existsSync(contentPath(dir, blobDigest(layer.digest))), false);
    // The running store picks the note up and its accounting follows.
    for (let i = 0; i < 100 && store.has(layer.digest); i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(store.has(layer.digest), false);
    assert.equal(store.stats().bytes, 300);
    // Storing it again works (no stale entry claims it is there).
    await store.putBuffer(layer.digest, layer.data);
    assert.equal((await store.readBuffer(layer.digest))?.data.equals(layer.data), true);
  });

  test('scrub removes corrupt entries and forgets vanished ones; open() of a vanished file is a miss', async (t) => {
    const dir = tempDir(t);
    const store = await BlobStore.open({ dir, maxSizeBytes: 1 << 30, inactiveMs: 0 });
    t.after(() => store.close());
    const [a, b, c] = [makeBlob(2000), makeBlob(3000), makeBlob(4000)];
    for (const blob of [a, b, c]) await store.putBuffer(blob.digest, blob.data);
    flipByte(contentPath(dir, blobDigest(a.digest)), 5);
    unlinkSync(contentPath(dir, blobDigest(b.digest)));

    const result = await store.scrub();
    assert.deepEqual(result, { checked: 3, corrupt: [a.digest], missing: [b.digest] });
    assert.equal(store.has(a.digest), false);
    assert.equal(store.has(b.digest), false);
    assert.equal(store.stats().bytes, 4000);
    assert.deepEqual(
      (await listStoredEntries(dir)).map((e) => e.digest),
      [c.digest],
    );

    unlinkSync(contentPath(dir, blobDigest(c.digest)));
    assert.equal(await store.open(c.digest), undefined);
    assert.equal(store.stats().entries, 0);
  });
});

test('removal notes: only well-formed digest lines count, torn lines wait, a large file is read in bounded polls', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'drp-notes-'));
  try {
    const reader = new RemovalNotesReader(dir);
    await reader.reset();
    const good = `sha256:${'a'.repeat(64)}`;
    await noteRemovals(dir, [good]);
    appendFileSync(
      join(dir, REMOVAL_NOTES_FILE),
      `D ../../etc/passwd\nX sha256:${'b'.repeat(64)}\nD sha256:short\ngarbage\nD sha256:${'c'.repeat(64)}`,
    );
    assert.deepEqual(await reader.poll(), [good]);
    // The torn last line is read once it is complete.
    appendFileSync(join(dir, REMOVAL_NOTES_FILE), '\n');
    assert.deepEqual(await reader.poll(), [`sha256:${'c'.repeat(64)}`]);
    // 3 MiB of noise, then a real note: every poll reads at most 1 MiB, and the note arrives.
    appendFileSync(join(dir, REMOVAL_NOTES_FILE), `${'x'.repeat(1023)}\n`.repeat(3 * 1024));
    await noteRemovals(dir, [good]);
    const seen: string[] = [];
    for (let i = 0; i < 6 && seen.length === 0; i += 1) seen.push(...(await reader.poll()));
    assert.deepEqual(seen, [good]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
