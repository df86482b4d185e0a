/**
 * The conformance suite for stores shared by several processes (stores with `claim`):
 *
 *   import { multiProcessConformance } from '@drp/core/testing';
 *   multiProcessConformance('my store', async (t, count) => openStoresOnOneLocation(count));
 *
 * `makeStores` returns `count` store instances on one shared location, each as a separate
 * process would open it. The assertions are what the blob engine relies on for cross-process
 * single-flight (store/content-store.ts `claim`, blob-engine/shared-fill.ts). Takeover of a
 * dead leader needs a real dead process; the default store tests it that way
 * (packages/core/test/cross-process.test.ts).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, type TestContext, test } from 'node:test';
import type { ContentStore, FillClaim, RemoteFill, RemoteState } from '../store/content-store.js';

export type MakeSharedStores = (t: TestContext, count: number) => Promise<ContentStore[]>;

function sample(size: number): { data: Buffer; digest: string } {
  const data = randomBytes(size);
  return { data, digest: `sha256:${createHash('sha256').update(data).digest('hex')}` };
}

function claimOf(store: ContentStore, digest: string, meta?: Record<string, string>): Promise<FillClaim> {
  if (!store.claim) throw new Error('the store has no claim(): it is not shared across processes');
  return store.claim(digest, meta ? { meta } : {});
}

function follower(claim: FillClaim): RemoteFill {
  assert.equal(claim.kind, 'follow');
  return (claim as Extract<FillClaim, { kind: 'follow' }>).remote;
}

/** Reads `[0, length)` through `read`, waiting for bytes still being written. */
async function readUpTo(remote: RemoteFill, length: number): Promise<Buffer> {
  const out = Buffer.alloc(length);
  let position = 0;
  const deadline = Date.now() + 10_000;
  while (position < length) {
    const chunk = await remote.read(out.subarray(position), position);
    position += chunk.length;
    if (chunk.length === 0) {
      if (Date.now() > deadline) throw new Error(`only ${position} of ${length} bytes appeared`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
  return out;
}

/** Polls until `wanted` says yes (generous deadline, no timing assertion). */
async function pollUntil(remote: RemoteFill, wanted: (state: RemoteState) => boolean): Promise<RemoteState> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const state = await remote.poll();
    if (wanted(state)) return state;
    if (Date.now() > deadline) throw new Error(`state stayed ${state.kind}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function withStores(
  makeStores: MakeSharedStores,
  count: number,
  body: (stores: ContentStore[]) => Promise<void>,
) {
  return async (t: TestContext) => {
    const stores = await makeStores(t, count);
    try {
      await body(stores);
    } finally {
      await Promise.all(stores.map((store) => store.close()));
    }
  };
}

export function multiProcessConformance(name: string, makeStores: MakeSharedStores): void {
  describe(`ContentStore multi-process conformance: ${name}`, () => {
    test(
      'concurrent claims of one digest: exactly one leads, every other follows',
      withStores(makeStores, 4, async (stores) => {
        const blob = sample(1000);
        const claims = await Promise.all(
          stores.flatMap((store) => [claimOf(store, blob.digest), claimOf(store, blob.digest)]),
        );
        const leads = claims.filter((c) => c.kind === 'lead');
        assert.equal(leads.length, 1);
        for (const claim of claims) {
          if (claim.kind === 'lead') await claim.lease.release();
          else await claim.remote.close();
        }
      }),
    );

    test(
      "a follower reads the leader's bytes as they are written; after the commit the fill ends committed",
      withStores(makeStores, 2, async ([a, b]) => {
        const blob = sample(300_000);
        const led = await claimOf(a as ContentStore, blob.digest, { 'drp-kind': 'blob' });
        assert.equal(led.kind, 'lead');
        const { lease } = led as Extract<FillClaim, { kind: 'lead' }>;
        assert.equal(lease.resumeFrom, 0);
        const remote = follower(await claimOf(b as ContentStore, blob.digest));
        assert.equal((await remote.poll()).kind, 'connecting');
        const writer = await lease.createWriter({ size: blob.data.length });
        await lease.streaming(blob.data.length);
        const streaming = await pollUntil(remote, (s) => s.kind === 'streaming');
        assert.deepEqual(streaming, { kind: 'streaming', size: 300_000, meta: { 'drp-kind': 'blob' } });
        await writer.write([blob.data.subarray(0, 100_000)]);
        assert.ok(
          (await readUpTo(remote, 100_000)).equals(blob.data.subarray(0, 100_000)),
          'bytes as written',
        );
        await writer.write([blob.data.subarray(100_000)]);
        assert.equal(await writer.commit({ 'drp-kind': 'blob' }), true);
        await lease.release();
        await writer.close();
        const ended = await pollUntil(remote, (s) => s.kind === 'ended');
        assert.equal(ended.kind === 'ended' && ended.committed, true);
        assert.ok(
          (await readUpTo(remote, blob.data.length)).equals(blob.data),
          'every byte readable after the commit',
        );
        await remote.close();
        // Committed by another process: found, never fetched again.
        const again = await claimOf(b as ContentStore, blob.digest);
        const found = (await (b as ContentStore).open(blob.digest)) ?? undefined;
        if (found) await found.release();
        else {
          const committed = follower(again);
          const state = await pollUntil(committed, (s) => s.kind === 'ended');
          assert.equal(state.kind === 'ended' && state.committed, true);
          assert.ok((await readUpTo(committed, blob.data.length)).equals(blob.data));
        }
        if (again.kind === 'lead') assert.fail('a committed entry is not led again');
        else await again.remote.close();
      }),
    );

    test(
      'a lease released without a commit (declined): followers see the end, the next claim leads',
      withStores(makeStores, 2, async ([a, b]) => {
        const blob = sample(1000);
        const led = await claimOf(a as ContentStore, blob.digest);
        assert.equal(led.kind, 'lead');
        const remote = follower(await claimOf(b as ContentStore, blob.digest));
        if (led.kind === 'lead') await led.lease.release();
        const ended = await pollUntil(remote, (s) => s.kind === 'ended');
        assert.equal(ended.kind === 'ended' && ended.committed, false);
        await remote.close();
        const next = await claimOf(b as ContentStore, blob.digest);
        assert.equal(next.kind, 'lead');
        if (next.kind === 'lead') await next.lease.release();
        assert.equal(await (a as ContentStore).open(blob.digest), undefined, 'nothing stored');
      }),
    );
  });
}
