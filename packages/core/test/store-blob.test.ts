import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import cacache from 'cacache';
import { isDrpError } from '../src/api/errors.ts';
import { BlobStore, type BlobStoreOptions } from '../src/store/blob-store.ts';
import { blobDigest, contentPath } from '../src/store/digest.ts';
import { makeBlob, tempDir } from './blob-helpers.ts';

function clock(start = 1_700_000_000_000) {
  let now = start;
  return {
    now: () => now,
    advance(ms: number) {
      now += ms;
    },
  };
}

async function openStore(
  t: { after(fn: () => unknown): void },
  options: Partial<BlobStoreOptions> & { dir: string },
) {
  const store = await BlobStore.open({ maxSizeBytes: 1 << 30, inactiveMs: 0, ...options });
  t.after(() => store.close());
  return store;
}

describe('blob store', () => {
  test('putBuffer verifies, readBuffer and lookup find it, metadata round-trips', async (t) => {
    const dir = tempDir(t);
    const store = await openStore(t, { dir });
    const blob = makeBlob(1234);
    await store.putBuffer(blob.digest, blob.data, {
      'content-type': 'application/vnd.oci.image.manifest.v1+json',
    });
    const read = await store.readBuffer(blob.digest);
    assert.ok(read?.data.equals(blob.data));
    assert.equal(read?.meta?.['content-type'], 'application/vnd.oci.image.manifest.v1+json');
    const found = await store.lookup(blob.digest);
    assert.equal(found?.size, 1234);
    assert.equal(found?.path, contentPath(dir, blobDigest(blob.digest)));
    assert.ok(readFileSync(found?.path ?? '').equals(blob.data));
    // cacache itself reads the entry.
    const viaCacache = await cacache.get(dir, `blob:${blob.digest}`);
    assert.ok(viaCacache.data.equals(blob.data));

    const other = makeBlob(10);
    await assert.rejects(
      store.putBuffer(other.digest, blob.data),
      (e) => isDrpError(e) && e.code === 'DRP_DIGEST_MISMATCH',
    );
    assert.equal(await store.lookup(other.digest), undefined);
    await assert.rejects(
      store.putBuffer('sha256:nothex', blob.data),
      (e) => isDrpError(e) && e.code === 'DRP_DIGEST_INVALID',
    );
  });

  test('entries, metadata and access order survive a restart', async (t) => {
    const dir = tempDir(t);
    const c = clock();
    const first = await BlobStore.open({ dir, maxSizeBytes: 1 << 30, inactiveMs: 0, now: c.now });
    const [a, b, c3] = [makeBlob(100), makeBlob(100), makeBlob(100)];
    for (const blob of [a, b, c3]) {
      await first.putBuffer(blob.digest, blob.data, { n: blob.digest.slice(7, 12) });
      c.advance(1000);
    }
    await first.lookup(a.digest); // a becomes the most recently used
    assert.deepEqual(first.accessOrder(), [b.digest, c3.digest, a.digest]);
    await first.close();

    const second = await openStore(t, { dir, now: c.now });
    assert.deepEqual(second.accessOrder(), [b.digest, c3.digest, a.digest]);
    assert.equal(second.stats().entries, 3);
    assert.equal(second.stats().bytes, 300);
    assert.equal((await second.readBuffer(c3.digest))?.meta?.n, c3.digest.slice(7, 12));
  });

  test('the size cap evicts least recently used blobs first', async (t) => {
    const dir = tempDir(t);
    const c = clock();
    const store = await openStore(t, { dir, maxSizeBytes: 3000, now: c.now });
    const blobs = [makeBlob(1000), makeBlob(1000), makeBlob(1000), makeBlob(1000)];
    const [b0, b1, b2, b3] = blobs;
    assert.ok(b0 && b1 && b2 && b3);
    for (const blob of [b0, b1, b2]) {
      await store.putBuffer(blob.digest, blob.data);
      c.advance(10);
    }
    await store.readBuffer(b0.digest); // b1 is now the least recently used
    await store.putBuffer(b3.digest, b3.data);
    await store.settled();
    assert.ok(store.stats().bytes <= 3000);
    assert.equal(store.has(b1.digest), false);
    for (const blob of [b0, b2, b3]) assert.equal(store.has(blob.digest), true);
    assert.equal(existsSync(contentPath(dir, blobDigest(b1.digest))), false);
    assert.equal(await cacache.get.info(dir, `blob:${b1.digest}`), null);
  });

  test('the LRU order from before a restart decides what is evicted after it', async (t) => {
    const dir = tempDir(t);
    const c = clock();
    const before = await BlobStore.open({ dir, maxSizeBytes: 3000, inactiveMs: 0, now: c.now });
    const [x, y, z, w] = [makeBlob(1000), makeBlob(1000), makeBlob(1000), makeBlob(1000)];
    for (const blob of [x, y, z]) {
      await before.putBuffer(blob.digest, blob.data);
      c.advance(10);
    }
    await before.lookup(x.digest); // order: y, z, x
    await before.close();

    const after = await openStore(t, { dir, maxSizeBytes: 3000, now: c.now });
    await after.putBuffer(w.digest, w.data);
    await after.settled();
    assert.equal(after.stats().entries, 3);
    assert.equal(after.has(y.digest), false, 'y was the least recently used before the restart');
    for (const blob of [x, z, w]) assert.equal(after.has(blob.digest), true);
  });

  test('a blob being served is never evicted; it goes once released if still over the cap', async (t) => {
    const dir = tempDir(t);
    const store = await openStore(t, { dir, maxSizeBytes: 2000 });
    const [a, b, c] = [makeBlob(1000), makeBlob(1000), makeBlob(1000)];
    await store.putBuffer(a.digest, a.data);
    await store.putBuffer(b.digest, b.data);
    const handle = await store.open(a.digest); // a is pinned...
    assert.ok(handle);
    await store.readBuffer(b.digest); // b is more recent than a: a is the LRU, but pinned
    await store.putBuffer(c.digest, c.data);
    await store.settled();
    assert.ok(store.stats().bytes <= 2000);
    assert.equal(store.has(a.digest), true, 'pinned blob kept');
    assert.equal(store.has(b.digest), false);
    const { bytesRead } = await handle.file.read(Buffer.alloc(1000), 0, 1000, 0);
    assert.equal(bytesRead, 1000);
    await handle.release();
    assert.equal(store.stats().pinned, 0);
  });

  test('pinned blobs may hold the store over its cap until released', async (t) => {
    const dir = tempDir(t);
    const store = await openStore(t, { dir, maxSizeBytes: 1500 });
    const [a, b] = [makeBlob(1000), makeBlob(1000)];
    await store.putBuffer(a.digest, a.data);
    const handle = await store.open(a.digest);
    assert.ok(handle);
    await store.putBuffer(b.digest, b.data); // over the cap: a is pinned, b is newest -> b goes
    await store.settled();
    assert.equal(store.has(a.digest), true);
    assert.equal(store.has(b.digest), false);
    await handle.release();
  });

  test('inactive blobs expire; a pinned one waits', async (t) => {
    const dir = tempDir(t);
    const c = clock();
    const store = await openStore(t, { dir, inactiveMs: 60_000, now: c.now });
    const [old, pinned, fresh] = [makeBlob(10), makeBlob(10), makeBlob(10)];
    await store.putBuffer(old.digest, old.data);
    await store.putBuffer(pinned.digest, pinned.data);
    const handle = await store.open(pinned.digest);
    c.advance(50_000);
    await store.putBuffer(fresh.digest, fresh.data);
    c.advance(20_000);
    assert.equal(await store.sweepInactive(), 1);
    assert.equal(store.has(old.digest), false);
    assert.equal(store.has(pinned.digest), true);
    assert.equal(store.has(fresh.digest), true);
    await handle?.release();
    assert.equal(await store.sweepInactive(), 1);
    assert.equal(store.has(pinned.digest), false);
  });

  test('expiry is counted from the last read, across a restart', async (t) => {
    const dir = tempDir(t);
    const c = clock();
    const first = await BlobStore.open({ dir, maxSizeBytes: 1 << 30, inactiveMs: 60_000, now: c.now });
    const blob = makeBlob(10);
    await first.putBuffer(blob.digest, blob.data);
    c.advance(50_000);
    await first.readBuffer(blob.digest);
    await first.close();
    c.advance(50_000); // 100 s after the store, 50 s after the read
    const second = await openStore(t, { dir, inactiveMs: 60_000, now: c.now });
    assert.equal(second.has(blob.digest), true);
    c.advance(20_000);
    await second.sweepInactive();
    assert.equal(second.has(blob.digest), false);
  });

  test('a spool commit is atomic and visible only after it; crash leftovers are swept on open', async (t) => {
    const dir = tempDir(t);
    const store = await BlobStore.open({ dir, maxSizeBytes: 1 << 30, inactiveMs: 0 });
    const blob = makeBlob(5000);
    const spool = store.spoolPath();
    writeFileSync(spool, blob.data.subarray(0, 2000)); // a fill "crashed" halfway
    assert.equal(await store.lookup(blob.digest), undefined);
    // An orphaned content file (crash between the rename and the index line).
    const orphan = makeBlob(300);
    const orphanPath = contentPath(dir, blobDigest(orphan.digest));
    mkdirSync(dirname(orphanPath), { recursive: true });
    writeFileSync(orphanPath, orphan.data);
    await store.close();

    // Fresh leftovers may be another live process's fill or commit: an open leaves them.
    const second = await BlobStore.open({ dir, maxSizeBytes: 1 << 30, inactiveMs: 0 });
    assert.equal(existsSync(spool), true);
    assert.equal(existsSync(orphanPath), true);
    assert.equal(second.stats().entries, 0);
    await second.close();
    // Older than the grace (10 min): a dead process's garbage, swept on open.
    const old = new Date(Date.now() - 11 * 60_000);
    utimesSync(spool, old, old);
    utimesSync(orphanPath, old, old);
    const reopened = await openStore(t, { dir });
    assert.deepEqual(readdirSync(join(dir, 'drp-spool')), []);
    assert.equal(existsSync(orphanPath), false);
    assert.equal(reopened.stats().entries, 0);

    const good = reopened.spoolPath();
    writeFileSync(good, blob.data);
    assert.equal(await reopened.commitSpool(blob.digest, good, blob.data.length), true);
    assert.equal(existsSync(good), false);
    const found = await reopened.lookup(blob.digest);
    assert.ok(readFileSync(found?.path ?? '').equals(blob.data));
  });

  test('a blob larger than the whole cache is not stored', async (t) => {
    const dir = tempDir(t);
    const store = await openStore(t, { dir, maxSizeBytes: 100 });
    const blob = makeBlob(1000);
    const spool = store.spoolPath();
    writeFileSync(spool, blob.data);
    assert.equal(await store.commitSpool(blob.digest, spool, 1000), false);
    assert.equal(existsSync(spool), false);
    assert.equal(store.stats().entries, 0);
  });

  test('a content file deleted behind the store reads as a miss', async (t) => {
    const dir = tempDir(t);
    const store = await openStore(t, { dir });
    const blob = makeBlob(100);
    await store.putBuffer(blob.digest, blob.data);
    const { rmSync } = await import('node:fs');
    rmSync(contentPath(dir, blobDigest(blob.digest)));
    assert.equal(await store.open(blob.digest), undefined);
    assert.equal(store.has(blob.digest), false);
  });

  test('delete removes the entry and its content', async (t) => {
    const dir = tempDir(t);
    const store = await openStore(t, { dir });
    const blob = makeBlob(100);
    await store.putBuffer(blob.digest, blob.data);
    assert.equal(await store.delete(blob.digest), true);
    assert.equal(existsSync(contentPath(dir, blobDigest(blob.digest))), false);
    assert.equal(await store.readBuffer(blob.digest), undefined);
    // and it can be stored again right away
    await store.putBuffer(blob.digest, blob.data);
    assert.ok((await store.readBuffer(blob.digest))?.data.equals(blob.data));
  });
});
