/**
 * Lease files read from a shared directory are input: a torn, foreign, huge or hostile one
 * (a spool name that climbs out of the spool directory, a symlink) is never trusted, is judged
 * by staleness alone, and the blob is still served right. Breaking a stale lease is race-free
 * among many takers (also across processes: cross-process.test.ts).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { BlobStore } from '../src/store/blob-store.ts';
import { blobDigest } from '../src/store/digest.ts';
import {
  decodeRecord,
  encodeRecord,
  LeaseDir,
  type LeaseRecord,
  newRecord,
  StaleWatch,
} from '../src/store/fill-lease.ts';
import { blobPath, blobServer, makeBlob, startFront, startUpstream, tempDir } from './blob-helpers.ts';

const SPOOL = '0b8a2f3c-1d2e-4f50-8a6b-7c8d9e0f1a2b.part';

function foreign(overrides: Partial<LeaseRecord> = {}): LeaseRecord {
  return {
    id: 'foreign',
    host: 'another-host',
    ns: '1',
    pid: 1,
    spool: SPOOL,
    state: 'streaming',
    ...overrides,
  };
}

/** A well-formed file around any JSON: the checksum is right, the content is what is tested. */
function rawRecord(json: string): Buffer {
  return Buffer.from(`${json}\n${createHash('sha256').update(json).digest('hex').slice(0, 16)}\n`);
}

describe('lease records', () => {
  test('a record round-trips; anything else decodes as nothing', () => {
    const record = newRecord(SPOOL, 'prev-id', { 'drp-kind': 'blob' });
    assert.deepEqual(decodeRecord(encodeRecord(record)), record);
    const bytes = encodeRecord(record);
    const torn = Buffer.from(bytes);
    torn[10] = (torn[10] ?? 0) ^ 1;
    assert.equal(decodeRecord(torn), undefined, 'checksum');
    assert.equal(decodeRecord(bytes.subarray(0, bytes.length - 5)), undefined, 'truncated');
    assert.equal(decodeRecord(Buffer.concat([bytes, Buffer.from('x')])), undefined, 'trailing bytes');
    assert.equal(decodeRecord(randomBytes(300)), undefined, 'garbage');
    assert.equal(decodeRecord(Buffer.alloc(0)), undefined, 'empty');
  });

  test('hostile fields are refused even with a valid checksum', () => {
    const bad: Record<string, unknown>[] = [
      { spool: '../../etc/passwd' },
      { spool: `../drp-spool/${SPOOL}` },
      { spool: `/${SPOOL}` },
      { spool: `${SPOOL}/x` },
      { pid: -1 },
      { pid: 1.5 },
      { size: -4 },
      { size: '12' },
      { state: 'done' },
      { meta: { a: 1 } },
      { meta: ['x'] },
      { id: 'x'.repeat(65) },
    ];
    for (const patch of bad) {
      const json = JSON.stringify({ ...foreign(), ...patch });
      assert.equal(decodeRecord(rawRecord(json)), undefined, json);
    }
    assert.equal(decodeRecord(rawRecord('[1,2]')), undefined);
    assert.equal(decodeRecord(rawRecord('{"__proto__":{"x":1}}')), undefined);
  });
});

describe('breaking a stale lease', () => {
  test('many concurrent takers: exactly one wins each round, the fresh lease is never removed', async (t) => {
    const dir = tempDir(t);
    const timing = { heartbeatMs: 50, staleMs: 150 };
    const d = { d: blobDigest(makeBlob(10).digest) };
    for (let round = 0; round < 8; round += 1) {
      const leases = new LeaseDir(join(dir, 'drp-leases'), timing);
      mkdirSync(leases.dir, { recursive: true });
      writeFileSync(leases.path(d), encodeRecord(foreign({ id: `stale-${round}` })));
      const takers = Array.from({ length: 30 }, () => new LeaseDir(leases.dir, timing));
      const seen = await leases.read(d);
      assert.ok(seen);
      const watch = new StaleWatch(0);
      assert.equal(watch.stale(seen), true);
      const held = await Promise.all(
        takers.map(async (taker) =>
          (await taker.breakStale(d, seen)) ? taker.create(d, newRecord(SPOOL)) : undefined,
        ),
      );
      const winners = held.filter((h) => h !== undefined);
      assert.equal(winners.length, 1, `round ${round}`);
      const now = await leases.read(d);
      assert.equal(now?.record?.id, winners[0]?.record.id, "the lease file is the winner's");
      // Late takers that judged the old lease stale cannot remove the new one.
      assert.deepEqual(await Promise.all(takers.slice(0, 5).map((taker) => taker.breakStale(d, seen))), [
        false,
        false,
        false,
        false,
        false,
      ]);
      assert.equal((await leases.read(d))?.record?.id, winners[0]?.record.id);
      await winners[0]?.release();
      assert.equal(await leases.read(d), undefined, 'released');
    }
  });

  test('a held lease is not stale while its holder beats; release removes only its own file', async (t) => {
    const dir = tempDir(t);
    const timing = { heartbeatMs: 40, staleMs: 200 };
    const leases = new LeaseDir(dir, timing);
    const d = { d: blobDigest(makeBlob(10).digest) };
    const held = await leases.create(d, newRecord(SPOOL));
    assert.ok(held);
    assert.equal(await leases.create(d, newRecord(SPOOL)), undefined, 'O_EXCL');
    const watch = new StaleWatch(timing.staleMs);
    const until = performance.now() + 600;
    while (performance.now() < until) {
      const seen = await leases.read(d);
      assert.ok(seen);
      assert.equal(watch.stale(seen), false);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await held.release();
    const other = await leases.create(d, newRecord(SPOOL));
    assert.ok(other);
    await held.release();
    assert.equal((await leases.read(d))?.record?.id, other.record.id, 'a second release touches nothing');
    await other.release();
  });
});

describe('hostile lease files in front of a fill', () => {
  const cases: [string, (dir: string, leasePath: string, size: number) => void][] = [
    ['garbage', (_dir, path) => writeFileSync(path, randomBytes(200))],
    ['huge (8 MiB)', (_dir, path) => writeFileSync(path, Buffer.alloc(8 * 1024 * 1024, 0x7b))],
    [
      'a spool name climbing out of the spool directory',
      (_dir, path, size) =>
        writeFileSync(path, rawRecord(JSON.stringify({ ...foreign({ size }), spool: '../../etc/passwd' }))),
    ],
    [
      'a spool that is a symlink to another file',
      (dir, path, size) => {
        mkdirSync(join(dir, 'drp-spool'), { recursive: true });
        writeFileSync(join(dir, 'secret'), Buffer.alloc(size, 'S'));
        symlinkSync(join(dir, 'secret'), join(dir, 'drp-spool', SPOOL));
        writeFileSync(path, encodeRecord(foreign({ size })));
      },
    ],
  ];
  for (const [name, plant] of cases) {
    test(`${name}: judged stale, broken, the blob served right`, async (t) => {
      const blob = makeBlob(300_000);
      const upstream = await startUpstream(t, blobServer(new Map([[blob.digest, blob.data]])));
      const dir = tempDir(t);
      const store = await BlobStore.open({
        dir,
        maxSizeBytes: 1 << 30,
        inactiveMs: 0,
        leaseTiming: { heartbeatMs: 100, staleMs: 400 },
      });
      t.after(() => store.close());
      const leases = new LeaseDir(join(dir, 'drp-leases'));
      mkdirSync(leases.dir, { recursive: true });
      const key = { d: blobDigest(blob.digest), registry: `127.0.0.1:${upstream.port}` };
      plant(dir, leases.path(key), blob.data.length);
      const options = { cacheDir: dir, store }; // startFront passes `store` on to createRegistryCache
      const front = await startFront(t, upstream.port, options);
      const response = await front.get(blobPath(blob.digest));
      assert.equal(response.status, 200);
      assert.ok(response.complete);
      assert.ok(response.body.equals(blob.data), 'the blob, nothing else');
      assert.equal(upstream.count('GET', '/blobs/'), 1);
    });
  }
});

describe('claims across processes', () => {
  test('keyed by registry and digest: another registry leads its own fill of the same digest', async (t) => {
    const dir = tempDir(t);
    const open = () => BlobStore.open({ dir, maxSizeBytes: 1 << 30, inactiveMs: 0 });
    const [a, b] = await Promise.all([open(), open()]);
    t.after(() => Promise.all([a.close(), b.close()]));
    const { digest } = makeBlob(100);
    const first = await a.claim(digest, { registry: 'one.test:443' });
    const other = await b.claim(digest, { registry: 'two.test:443' });
    const same = await b.claim(digest, { registry: 'one.test:443' });
    assert.deepEqual([first.kind, other.kind, same.kind], ['lead', 'lead', 'follow']);
    for (const claim of [first, other, same]) {
      if (claim.kind === 'lead') await claim.lease.release();
      else await claim.remote.close();
    }
  });
});
