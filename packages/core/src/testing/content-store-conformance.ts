/**
 * The conformance suite every ContentStore must pass (like undici's shared cache-store tests):
 *
 *   import { contentStoreConformance } from '@drp/core/testing';
 *   contentStoreConformance('my store', async (t) => new MyStore());
 *
 * It registers node:test tests; each gets a fresh store from `makeStore` (use `t.after` there
 * to remove what it made) and closes it afterwards. The assertions are the contract the blob
 * engine and the manifest handlers rely on (store/content-store.ts).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, type TestContext, test } from 'node:test';
import type { ContentStore } from '../store/content-store.js';

export type MakeContentStore = (t: TestContext) => Promise<ContentStore>;

interface Sample {
  readonly data: Buffer;
  readonly digest: string;
}

function sample(size: number): Sample {
  const data = randomBytes(size);
  return { data, digest: `sha256:${createHash('sha256').update(data).digest('hex')}` };
}

/** The whole entry read through a handle's positional reads, small steps on purpose. */
async function readAll(read: (into: Buffer, position: number) => Promise<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  let position = 0;
  for (;;) {
    const chunk = await read(Buffer.alloc(1000), position);
    if (chunk.length === 0) return Buffer.concat(parts);
    parts.push(Buffer.from(chunk));
    position += chunk.length;
  }
}

async function rejectsWithCode(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (error: { code?: string }) => error.code === code);
}

function withStore(makeStore: MakeContentStore, body: (store: ContentStore) => Promise<void>) {
  return async (t: TestContext) => {
    const store = await makeStore(t);
    try {
      await body(store);
    } finally {
      await store.close();
    }
  };
}

export function contentStoreConformance(name: string, makeStore: MakeContentStore): void {
  describe(`ContentStore conformance: ${name}`, () => {
    writerTests(makeStore);
    bufferTests(makeStore);
    handleTests(makeStore);
  });
}

function writerTests(makeStore: MakeContentStore): void {
  test(
    'a written entry is visible only once committed, with its metadata',
    withStore(makeStore, async (store) => {
      const blob = sample(5000);
      const writer = await store.createWriter(blob.digest, { size: blob.data.length });
      await writer.write([blob.data.subarray(0, 1200), blob.data.subarray(1200, 3000)]);
      await writer.write([blob.data.subarray(3000)]);
      assert.equal(writer.written, 5000);
      assert.equal(store.peek(blob.digest), undefined, 'not visible before commit');
      assert.equal(await store.open(blob.digest), undefined);
      assert.ok((await readAll(writer.read)).equals(blob.data), 'written bytes readable from the writer');
      assert.equal(await writer.commit({ kind: 'blob' }), true);
      assert.ok((await readAll(writer.read)).equals(blob.data), 'still readable after commit until close');
      await writer.close();
      assert.deepEqual(store.peek(blob.digest), { size: 5000, meta: { kind: 'blob' } });
      const stats = store.stats();
      assert.equal(stats.entries, 1);
      assert.equal(stats.bytes, 5000);
      assert.equal(stats.stored, 1);
    }),
  );

  test(
    'bytes that do not match the digest are never visible',
    withStore(makeStore, async (store) => {
      const blob = sample(3000);
      const wrong = Buffer.from(blob.data);
      wrong[100] = (wrong[100] ?? 0) ^ 0xff;
      const writer = await store.createWriter(blob.digest);
      await writer.write([wrong]);
      await rejectsWithCode(writer.verify(), 'DRP_DIGEST_MISMATCH');
      await assert.rejects(writer.commit());
      await writer.close();
      assert.equal(store.peek(blob.digest), undefined);
      assert.equal(await store.open(blob.digest), undefined);
      assert.equal(store.stats().entries, 0);
    }),
  );

  test(
    'an incomplete entry does not verify',
    withStore(makeStore, async (store) => {
      const blob = sample(3000);
      const writer = await store.createWriter(blob.digest);
      await writer.write([blob.data.subarray(0, 2999)]);
      await rejectsWithCode(writer.commit(), 'DRP_DIGEST_MISMATCH');
      await writer.close();
      assert.equal(store.peek(blob.digest), undefined);
    }),
  );

  test(
    'abort leaves nothing',
    withStore(makeStore, async (store) => {
      const blob = sample(2000);
      const writer = await store.createWriter(blob.digest);
      await writer.write([blob.data]);
      await writer.abort();
      await writer.abort();
      await writer.close();
      assert.equal(store.peek(blob.digest), undefined);
      assert.equal(await store.readBuffer(blob.digest), undefined);
      assert.deepEqual([store.stats().entries, store.stats().bytes], [0, 0]);
    }),
  );

  test(
    'concurrent writers of one digest store it once',
    withStore(makeStore, async (store) => {
      const blob = sample(4000);
      const [a, b] = await Promise.all([store.createWriter(blob.digest), store.createWriter(blob.digest)]);
      await Promise.all([a.write([blob.data.subarray(0, 2000)]), b.write([blob.data.subarray(0, 1000)])]);
      await Promise.all([a.write([blob.data.subarray(2000)]), b.write([blob.data.subarray(1000)])]);
      assert.deepEqual(await Promise.all([a.commit(), b.commit()]), [true, true]);
      await Promise.all([a.close(), b.close()]);
      assert.deepEqual([store.stats().entries, store.stats().bytes], [1, 4000]);
      assert.ok((await store.readBuffer(blob.digest))?.data.equals(blob.data));
    }),
  );
}

function bufferTests(makeStore: MakeContentStore): void {
  test(
    'putBuffer / readBuffer round trip, metadata included and updatable',
    withStore(makeStore, async (store) => {
      const blob = sample(700);
      await store.putBuffer(blob.digest, blob.data, { 'content-type': 'application/x-test' });
      const found = await store.readBuffer(blob.digest);
      assert.ok(found?.data.equals(blob.data));
      assert.deepEqual(found?.meta, { 'content-type': 'application/x-test' });
      await store.putBuffer(blob.digest, blob.data, { 'content-type': 'application/x-other' });
      assert.deepEqual(store.peek(blob.digest), {
        size: 700,
        meta: { 'content-type': 'application/x-other' },
      });
      assert.equal(store.stats().entries, 1);
    }),
  );

  test(
    'putBuffer refuses bytes that do not match the digest',
    withStore(makeStore, async (store) => {
      const blob = sample(700);
      await rejectsWithCode(store.putBuffer(blob.digest, randomBytes(700)), 'DRP_DIGEST_MISMATCH');
      assert.equal(store.peek(blob.digest), undefined);
      assert.equal(await store.readBuffer(blob.digest), undefined);
      assert.equal(store.stats().entries, 0);
    }),
  );

  test(
    'delete removes an entry; deleting a missing one says so',
    withStore(makeStore, async (store) => {
      const blob = sample(300);
      await store.putBuffer(blob.digest, blob.data);
      assert.equal(await store.delete(blob.digest), true);
      assert.equal(store.peek(blob.digest), undefined);
      assert.equal(await store.delete(blob.digest), false);
      assert.deepEqual([store.stats().entries, store.stats().bytes], [0, 0]);
      await store.putBuffer(blob.digest, blob.data);
      assert.equal(store.peek(blob.digest)?.size, 300, 'stored again after a delete');
    }),
  );
}

function handleTests(makeStore: MakeContentStore): void {
  test(
    'an open handle is pinned and reads exactly the entry',
    withStore(makeStore, async (store) => {
      const blob = sample(2500);
      await store.putBuffer(blob.digest, blob.data, { kind: 'blob' });
      const handle = await store.open(blob.digest);
      assert.ok(handle);
      assert.deepEqual([handle.digest, handle.size, handle.meta], [blob.digest, 2500, { kind: 'blob' }]);
      assert.equal(store.stats().pinned, 1);
      assert.ok((await readAll(handle.read)).equals(blob.data));
      assert.equal((await handle.read(Buffer.alloc(10), 2500)).length, 0, 'empty at the end');
      await handle.release();
      await handle.release();
      assert.equal(store.stats().pinned, 0);
    }),
  );

  test(
    'delete while a handle is open: the handle keeps reading',
    withStore(makeStore, async (store) => {
      const blob = sample(6000);
      await store.putBuffer(blob.digest, blob.data);
      const handle = await store.open(blob.digest);
      assert.ok(handle);
      assert.equal(await store.delete(blob.digest), true);
      assert.equal(store.peek(blob.digest), undefined);
      assert.equal(await store.open(blob.digest), undefined);
      assert.ok((await readAll(handle.read)).equals(blob.data));
      await handle.release();
    }),
  );
}
