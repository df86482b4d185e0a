/**
 * One cache directory, several real processes (child_process.fork of a BlobStore each, see
 * fixtures/shared-store-child.ts): in-flight spools survive another process's start, commits
 * are hits everywhere, the cap and the inactive time hold for the directory, a reader is never
 * broken by another process's removal, the evictor lease moves on when its holder is killed,
 * and garbage in shared files is ignored.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, fork, spawnSync } from 'node:child_process';
import {
  appendFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { journalFiles } from '../src/store/access-journal.ts';
import { BlobStore, type BlobStoreOptions, type BlobStoreStats } from '../src/store/blob-store.ts';
import { blobMeta, kindOf, manifestMeta } from '../src/store/content-kind.ts';
import { blobDigest, contentPath } from '../src/store/digest.ts';
import { EvictorLease } from '../src/store/evictor-lease.ts';
import { digestOf, ManifestStore } from '../src/store/manifest-store.ts';
import { type Blob, makeBlob, type TestContextLike, tempDir, until } from './blob-helpers.ts';

const CHILD = join(import.meta.dirname, 'fixtures', 'shared-store-child.ts');

/** Fast timers so that the tests take seconds; the defaults are in blob-store-types.ts. */
const FAST: Partial<BlobStoreOptions> = {
  inactiveMs: 0,
  peerPollMs: 100,
  journalFlushMs: 100,
  leaseStaleMs: 1500,
  guardMs: 800,
  housekeepingMs: 300,
  removalPollMs: 200,
};

interface Peer {
  readonly id: string;
  readonly child: ChildProcess;
  call<T = unknown>(op: string, args?: Record<string, unknown>): Promise<T>;
  kill(): Promise<void>;
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

/** A directory for the test's processes; removed after every process is gone. */
function sharedDir(t: TestContextLike): { dir: string; children: ChildProcess[] } {
  const dir = mkdtempSync(join(tmpdir(), 'drp-shared-'));
  const children: ChildProcess[] = [];
  t.after(async () => {
    await Promise.all(children.map(exited));
    rmSync(dir, { recursive: true, force: true, maxRetries: 5 });
  });
  return { dir, children };
}

async function startPeer(
  shared: { dir: string; children: ChildProcess[] },
  options: Partial<BlobStoreOptions> = {},
): Promise<Peer> {
  const child = fork(CHILD, [], {
    execArgv: ['--import', 'tsx'],
    env: {
      ...process.env,
      STORE_OPTIONS: JSON.stringify({ maxSizeBytes: 1 << 30, ...FAST, ...options, dir: shared.dir }),
    },
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  shared.children.push(child);
  const pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  let seq = 0;
  const id = await new Promise<string>((resolve, reject) => {
    child.on(
      'message',
      (m: { ready?: string; seq?: number; ok?: boolean; result?: unknown; error?: string }) => {
        if (m.ready !== undefined) return resolve(m.ready);
        const call = pending.get(m.seq ?? -1);
        pending.delete(m.seq ?? -1);
        if (m.ok) call?.resolve(m.result);
        else call?.reject(new Error(m.error));
      },
    );
    child.once('exit', (code, signal) => {
      const error = new Error(`store process exited (${code ?? signal})`);
      reject(error);
      for (const call of pending.values()) call.reject(error);
    });
  });
  return {
    id,
    child,
    call<T>(op: string, args: Record<string, unknown> = {}) {
      seq += 1;
      const n = seq;
      return new Promise<T>((resolve, reject) => {
        pending.set(n, { resolve: resolve as (v: unknown) => void, reject });
        child.send({ seq: n, op, ...args });
      });
    },
    kill: () => exited(child),
  };
}

/** Bytes of content files on disk: what the cap is about. */
function bytesOnDisk(dir: string): number {
  let total = 0;
  const walk = (d: string) => {
    if (!existsSync(d)) return;
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else total += statSync(join(d, e.name)).size;
    }
  };
  walk(join(dir, 'content-v2'));
  return total;
}

const onDisk = (dir: string, blob: Blob) => existsSync(contentPath(dir, blobDigest(blob.digest)));

async function readAll(peer: Peer, blob: Blob, size: number, step = 64 * 1024): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (let position = 0; position < size; position += step) {
    parts.push(
      Buffer.from(await peer.call<Uint8Array>('read', { digest: blob.digest, position, length: step })),
    );
  }
  return Buffer.concat(parts);
}

describe('a store shared by several processes', () => {
  test('a process starting mid-write leaves the spool alone; the commit is a hit in the other, with its kind', async (t) => {
    const shared = sharedDir(t);
    const { dir } = shared;
    const a = await startPeer(shared);
    const layer = makeBlob(3_000_000);
    await a.call('write', { digest: layer.digest, data: layer.data.subarray(0, 1_000_000) });
    const spool = readdirSync(join(dir, 'drp-spool'));
    assert.equal(spool.length, 1);

    const b = await startPeer(shared);
    assert.deepEqual(readdirSync(join(dir, 'drp-spool')), spool, "b's start left a's spool file alone");
    await a.call('write', { digest: layer.digest, data: layer.data.subarray(1_000_000) });
    assert.equal(await a.call('commit', { digest: layer.digest, meta: blobMeta('anonymous') }), true);

    // b never saw the commit: open() finds it on disk, with the kind and class a stored.
    const opened = await b.call<{ size: number; meta: Record<string, string> }>('open', {
      digest: layer.digest,
    });
    assert.equal(opened.size, layer.data.length);
    assert.equal(kindOf(opened.meta), 'blob');
    assert.ok((await readAll(b, layer, opened.size)).equals(layer.data));
    await b.call('release', { digest: layer.digest });

    const manifest = makeBlob(700);
    await a.call('put', {
      digest: manifest.digest,
      data: manifest.data,
      meta: manifestMeta('application/vnd.oci.image.manifest.v1+json', 'anonymous'),
    });
    const read = await b.call<{ data: Uint8Array; meta: Record<string, string> }>('readBuffer', {
      digest: manifest.digest,
    });
    assert.ok(Buffer.from(read.data).equals(manifest.data));
    assert.equal(kindOf(read.meta), 'manifest');

    // Counted once in each process's view, however it learned of the entries (journal or disk).
    await delay(400);
    for (const peer of [a, b]) {
      await peer.call('sync');
      const stats = await peer.call<BlobStoreStats>('stats');
      assert.equal(stats.entries, 2);
      assert.equal(stats.bytes, layer.data.length + manifest.data.length);
    }
    // peek (no I/O) knows it in a third process after a journal poll.
    const c = await startPeer(shared);
    assert.equal((await c.call<{ size: number }>('peek', { digest: layer.digest }))?.size, layer.data.length);
  });

  test('the cap holds for the directory with three processes writing at once, in LRU order across them', async (t) => {
    const shared = sharedDir(t);
    const { dir } = shared;
    const cap = 1_000_000;
    const peers = [await startPeer(shared, { maxSizeBytes: cap })];
    peers.push(
      await startPeer(shared, { maxSizeBytes: cap }),
      await startPeer(shared, { maxSizeBytes: cap }),
    );
    const [a, b, c] = peers as [Peer, Peer, Peer];
    assert.deepEqual(await Promise.all(peers.map((p) => p.call('evictor'))), [true, false, false]);

    const old = Array.from({ length: 4 }, () => makeBlob(100_000));
    for (const blob of old) {
      await a.call('put', { digest: blob.digest, data: blob.data });
      await delay(20);
    }
    await delay(300); // b learns of them
    await b.call('readBuffer', { digest: old[0]?.digest }); // read in b: the most recent of a's
    await delay(300);

    const fresh = Array.from({ length: 8 }, () => makeBlob(100_000));
    await Promise.all(
      [b, c].map(async (peer, i) => {
        for (const blob of fresh.slice(i * 4, i * 4 + 4))
          await peer.call('put', { digest: blob.digest, data: blob.data });
      }),
    );
    // 12 blobs of 100 kB under a 1 MB cap: the evictor (a) removes two, within seconds.
    await until(() => bytesOnDisk(dir) <= cap, 20_000);
    assert.equal(onDisk(dir, old[1] as Blob), false, 'least recently used');
    assert.equal(onDisk(dir, old[2] as Blob), false);
    assert.equal(onDisk(dir, old[0] as Blob), true, 'read in another process: recent');
    assert.equal(onDisk(dir, old[3] as Blob), true);
    for (const blob of fresh) assert.equal(onDisk(dir, blob), true);
    // Every process's accounting follows.
    await until(async () => {
      const all = await Promise.all(peers.map((p) => p.call<BlobStoreStats>('stats')));
      return all.every((s) => s.entries === 10 && s.bytes === 1_000_000);
    }, 5000);
  });

  test('inactive expiry holds for the directory: a blob read in another process stays', async (t) => {
    const shared = sharedDir(t);
    const { dir } = shared;
    const options = { inactiveMs: 1500, sweepIntervalMs: 200 };
    const a = await startPeer(shared, options);
    const b = await startPeer(shared, options);
    const [x, y, z] = [makeBlob(1000), makeBlob(1000), makeBlob(1000)];
    await a.call('put', { digest: x.digest, data: x.data });
    await a.call('put', { digest: y.digest, data: y.data });
    await b.call('put', { digest: z.digest, data: z.data }); // stored by the process that is not the evictor
    const reading = (async () => {
      for (let i = 0; i < 14; i += 1) {
        assert.ok(await b.call('readBuffer', { digest: y.digest }));
        await delay(250);
      }
    })();
    await until(() => !onDisk(dir, x) && !onDisk(dir, z), 8000);
    await reading;
    assert.equal(onDisk(dir, y), true, 'read every 250 ms in b');
  });

  test('a blob another process is reading is not broken by the evictor or a delete; the evictor prefers others', async (t) => {
    const shared = sharedDir(t);
    const { dir } = shared;
    const cap = 400_000;
    const a = await startPeer(shared, { maxSizeBytes: cap });
    const b = await startPeer(shared, { maxSizeBytes: cap });
    const big = makeBlob(300_000);
    await a.call('put', { digest: big.digest, data: big.data });
    const opened = await b.call<{ size: number }>('open', { digest: big.digest });
    const head = await readAll(b, big, 100_000, 50_000);

    // a needs room while b reads: big is the least recently used in a's own table, but b uses it.
    await delay(300);
    const other = makeBlob(100_000);
    await a.call('put', { digest: other.digest, data: other.data });
    await delay(1500); // longer than the guard: only b's open handle keeps big fresh now
    const more = makeBlob(100_000);
    await a.call('put', { digest: more.digest, data: more.data });
    await a.call('settled');
    assert.equal(onDisk(dir, big), true, 'kept while b reads it');
    assert.equal(onDisk(dir, other), false, 'the least recently used blob nobody reads went instead');
    assert.ok(bytesOnDisk(dir) <= cap);

    // Removed outright while b still reads: b's open file keeps reading (unlink semantics).
    assert.equal(await a.call('delete', { digest: big.digest }), true);
    await a.call('settled');
    assert.equal(onDisk(dir, big), false);
    const rest: Buffer[] = [];
    for (let position = 100_000; position < opened.size; position += 50_000) {
      rest.push(
        Buffer.from(await b.call<Uint8Array>('read', { digest: big.digest, position, length: 50_000 })),
      );
    }
    assert.ok(Buffer.concat([head, ...rest]).equals(big.data), "b's read completes with the right bytes");
    await b.call('release', { digest: big.digest });
    await until(async () => !(await b.call<boolean>('has', { digest: big.digest })), 3000);
  });

  test('kill -9 of the evictor: another process takes the lease over and holds the cap; its journal is folded', async (t) => {
    const shared = sharedDir(t);
    const { dir } = shared;
    const cap = 500_000;
    const a = await startPeer(shared, { maxSizeBytes: cap });
    const b = await startPeer(shared, { maxSizeBytes: cap });
    const c = await startPeer(shared, { maxSizeBytes: cap });
    assert.equal(await a.call('evictor'), true);
    const kept = makeBlob(100_000);
    await a.call('put', { digest: kept.digest, data: kept.data });
    await a.kill();
    await until(
      async () => ((await b.call('evictor')) as boolean) || ((await c.call('evictor')) as boolean),
      15_000,
    );
    assert.equal(
      ((await b.call('evictor')) as boolean) !== ((await c.call('evictor')) as boolean),
      true,
      'one evictor',
    );

    const blobs = Array.from({ length: 8 }, () => makeBlob(100_000));
    for (const blob of blobs) await b.call('put', { digest: blob.digest, data: blob.data });
    await until(() => bytesOnDisk(dir) <= cap, 20_000).catch(async (e) => {
      console.log(
        'DBG',
        bytesOnDisk(dir),
        await b.call('evictor'),
        await c.call('evictor'),
        JSON.stringify(await b.call('stats')),
        JSON.stringify(await c.call('stats')),
        readdirSync(dir),
      );
      throw e;
    });
    // a's journal (a dead pid on this host) is folded into the base by the new evictor.
    await until(async () => !(await journalFiles(dir)).includes(`drp-access.${a.id}.journal`), 15_000);
    assert.ok((await journalFiles(dir)).includes('drp-access.journal'));
  });
});

describe('shared files other processes left', () => {
  test('a stale .part (older than the grace) is collected on open and periodically, a fresh one is not', async (t) => {
    const dir = tempDir(t);
    const first = await BlobStore.open({ dir, maxSizeBytes: 1 << 30, inactiveMs: 0 });
    await first.close();
    const spool = join(dir, 'drp-spool');
    const old = new Date(Date.now() - 11 * 60_000);
    writeFileSync(join(spool, 'dead.part'), 'x');
    utimesSync(join(spool, 'dead.part'), old, old);
    writeFileSync(join(spool, 'live.part'), 'y');
    const store = await BlobStore.open({ dir, maxSizeBytes: 1 << 30, inactiveMs: 0, housekeepingMs: 100 });
    t.after(() => store.close());
    assert.deepEqual(readdirSync(spool), ['live.part']);
    writeFileSync(join(spool, 'later.part'), 'z');
    utimesSync(join(spool, 'later.part'), old, old);
    await until(() => !existsSync(join(spool, 'later.part')), 3000);
    assert.deepEqual(readdirSync(spool), ['live.part']);
  });

  test('garbage, hostile and unknown journal lines are ignored; a garbage lease file is taken over when stale', async (t) => {
    const dir = tempDir(t);
    const ghost = makeBlob(100);
    const evil = join(dir, 'drp-access.evil-1-00000000.journal');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      evil,
      [
        'T ../../etc/passwd 1',
        `T ${ghost.digest} 99999999999999999999`,
        `T ${ghost.digest} 1700000000000`, // well-formed, but nothing on disk
        `D sha256:${'z'.repeat(64)}`,
        'x'.repeat(5000),
        '\u0000\u0001binary',
        '',
      ].join('\n'),
    );
    writeFileSync(join(dir, 'drp-evictor.lease'), '{"id": 5, "pid": "x"'); // torn / foreign
    // A FIFO named like a journal: opening it must not block the reader.
    assert.equal(spawnSync('mkfifo', [join(dir, 'drp-access.fifo-2-00000000.journal')]).status, 0);
    const store = await BlobStore.open({
      dir,
      maxSizeBytes: 1 << 30,
      inactiveMs: 0,
      ...FAST,
      leaseStaleMs: 600,
    });
    t.after(() => store.close());
    assert.equal(store.stats().entries, 0);
    assert.equal(store.evictor, false, 'an unreadable lease may be a holder between create and write');
    appendFileSync(evil, `T ${ghost.digest} 1700000000001\n${'y'.repeat(3_000_000)}\nT sha256:abc 1\n`);
    await store.syncPeers();
    await store.syncPeers();
    assert.equal(store.stats().entries, 0);
    assert.equal(store.has(ghost.digest), false);
    await until(() => store.evictor, 5000); // unchanged for leaseStaleMs: stale
    const real = makeBlob(2000);
    await store.putBuffer(real.digest, real.data);
    assert.ok((await store.readBuffer(real.digest))?.data.equals(real.data));
  });
});

test('a manifest another process stored is found by ManifestStore before any journal poll', async (t) => {
  const dir = tempDir(t);
  const slow = { maxSizeBytes: 1 << 30, inactiveMs: 0, peerPollMs: 60_000 };
  const a = await BlobStore.open({ dir, ...slow });
  t.after(() => a.close());
  const b = await BlobStore.open({ dir, ...slow });
  t.after(() => b.close());
  const body = Buffer.from('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}');
  const digest = digestOf(body);
  assert.equal(
    await new ManifestStore(a).put(digest, body, 'application/vnd.oci.image.manifest.v1+json', 'anonymous'),
    true,
  );
  assert.equal(b.peek(digest), undefined, 'b has not polled');
  const found = await new ManifestStore(b).get(digest);
  assert.ok(found?.data.equals(body));
  assert.equal(found?.mediaType, 'application/vnd.oci.image.manifest.v1+json');
  assert.equal(b.stats().entries, 1);
});

test('a lease held on another host is taken over only once its mtime stops moving', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'drp-evictor.lease');
  writeFileSync(
    path,
    `${JSON.stringify({ id: 'far-away-1-abcd', host: 'far-away', pid: 1, maxBytes: 123 })}\n`,
  );
  // The far process heartbeats with its own clock, here skewed an hour into the past.
  let beating = true;
  const heart = (async () => {
    while (beating) {
      const skewed = new Date(Date.now() - 3600_000 + Math.random() * 1000);
      utimesSync(path, skewed, skewed);
      await delay(50);
    }
  })();
  const lease = new EvictorLease({ path, maxBytes: 1000, staleMs: 400, heartbeatMs: 50 });
  await lease.start();
  t.after(() => lease.close());
  await delay(1200);
  assert.equal(lease.held, false, 'a moving mtime is a live holder, whatever its clock says');
  assert.equal(lease.holder?.maxBytes, 123, "the holder's cap is the one that applies");
  beating = false;
  await heart;
  await until(() => lease.held, 5000);
  assert.equal(JSON.parse(readFileSync(path, 'utf8')).id, lease.id);
});
