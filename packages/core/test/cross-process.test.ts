/**
 * Cross-process single-flight (store/fill-lease.ts, store/fill-claims.ts, blob-engine/
 * shared-fill.ts): real drp processes (fixtures/cross-process-child.ts) on one cache directory
 * in front of a slow upstream that speaks HTTP and honours Range. One leads, the others follow
 * its spool; a leader killed with SIGKILL is taken over with a Range request; nothing wrong or
 * partial is ever served or committed.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { get as httpGet, type IncomingMessage, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { blobDigest, contentPath } from '../src/store/digest.ts';
import { decodeRecord, encodeRecord, LeaseDir, type LeaseRecord } from '../src/store/fill-lease.ts';
import {
  type Blob,
  blobPath,
  type FrontResponse,
  makeBlob,
  request,
  startUpstream,
  type TestContextLike,
  type TestUpstream,
  tempDir,
  until,
} from './blob-helpers.ts';

const CHILD = join(import.meta.dirname, 'fixtures', 'cross-process-child.ts');
const TAKER = join(import.meta.dirname, 'fixtures', 'lease-taker.ts');
const MiB = 1024 * 1024;

interface Node {
  readonly child: ChildProcess;
  readonly port: number;
}

function startNode(t: TestContextLike, dir: string, upstreamPort: number, env: NodeJS.ProcessEnv = {}) {
  return new Promise<Node>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD], {
      env: { ...process.env, ...env, CACHE_DIR: dir, UPSTREAM_PORT: String(upstreamPort) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    t.after(() => child.kill('SIGKILL'));
    child.once('error', reject);
    child.stdout?.once('data', (b: Buffer) => resolve({ child, port: Number(b.toString().trim()) }));
  });
}

interface SlowOptions {
  /** The first GET sends this many bytes, then stalls (until its leader is killed). */
  readonly stallAfter?: number;
  readonly ignoreRange?: boolean;
  /** Answers requests without Authorization with 401 (after a delay). */
  readonly needsAuth?: boolean;
}

/** A registry blob endpoint that sends 64 KiB every 4 ms and honours `Range: bytes=N-`. */
function slowBlob(blob: Blob, options: SlowOptions = {}) {
  let gets = 0;
  return async (req: IncomingMessage, res: ServerResponse) => {
    if (options.needsAuth && !req.headers.authorization) {
      await new Promise((resolve) => setTimeout(resolve, 300));
      res.writeHead(401, { 'www-authenticate': 'Bearer realm="test"', 'content-type': 'application/json' });
      res.end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
      return;
    }
    gets += 1;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const from = range && !options.ignoreRange ? Number(range[1]) : 0;
    const headers = { 'content-length': blob.data.length - from, 'content-type': 'application/octet-stream' };
    if (from > 0) {
      res.writeHead(206, {
        ...headers,
        'content-range': `bytes ${from}-${blob.data.length - 1}/${blob.data.length}`,
      });
    } else {
      res.writeHead(200, headers);
    }
    const stall = gets === 1 ? options.stallAfter : undefined;
    for (let at = from; at < blob.data.length; at += 64 * 1024) {
      if (stall !== undefined && at >= stall) return; // stalls: the socket stays open
      if (res.destroyed) return;
      res.write(
        blob.data.subarray(at, Math.min(at + 64 * 1024, stall ?? blob.data.length, blob.data.length)),
      );
      await new Promise((resolve) => setTimeout(resolve, 4));
    }
    res.end();
  };
}

function blobGets(upstream: TestUpstream) {
  return upstream.seen.filter((r) => r.method === 'GET' && r.url.includes('/blobs/'));
}

function leaseOf(dir: string, blob: Blob): LeaseRecord | undefined {
  const { algorithm, hex } = blobDigest(blob.digest);
  const leases = join(dir, 'drp-leases');
  try {
    // Named by digest and (a hash of) the registry: fills are keyed by both.
    const name = readdirSync(leases).find((n) => n.startsWith(`${algorithm}-${hex}`) && n.endsWith('.lease'));
    return name ? decodeRecord(readFileSync(join(leases, name))) : undefined;
  } catch {
    return undefined;
  }
}

function assertServed(responses: FrontResponse[], blob: Blob): void {
  for (const r of responses) {
    assert.equal(r.status, 200);
    assert.ok(r.complete, 'complete');
    assert.ok(r.body.equals(blob.data), 'exactly the blob');
  }
}

const get = (node: Node, blob: Blob, headers = {}) => request(node.port, blobPath(blob.digest), headers);

/** A GET whose body is not read until `resume()`; resolves like `request`. */
function pausedGet(node: Node, blob: Blob): { resume(): Promise<FrontResponse> } {
  const response = new Promise<IncomingMessage>((resolve, reject) => {
    const req = httpGet({ host: '127.0.0.1', port: node.port, path: blobPath(blob.digest) }, resolve);
    req.once('error', reject);
  });
  return {
    async resume() {
      const res = await response;
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      const complete = await new Promise<boolean>((resolve) => {
        res.once('end', () => resolve(res.complete));
        res.once('error', () => resolve(false));
        res.once('close', () => resolve(res.complete));
      });
      return {
        status: res.statusCode ?? 0,
        headers: res.headers,
        body: Buffer.concat(chunks),
        complete,
      } as FrontResponse;
    },
  };
}

describe('cross-process single-flight', { concurrency: false }, () => {
  test('3 processes x 3 clients on one cold blob: 1 upstream GET, every client the right bytes; a hit afterwards in all', async (t) => {
    const blob = makeBlob(8 * MiB);
    const upstream = await startUpstream(t, slowBlob(blob));
    const dir = tempDir(t);
    const nodes = await Promise.all([0, 1, 2].map(() => startNode(t, dir, upstream.port)));
    const responses = await Promise.all(
      nodes.flatMap((node) => [get(node, blob), get(node, blob), get(node, blob)]),
    );
    assertServed(responses, blob);
    assert.equal(blobGets(upstream).length, 1, 'one upstream GET across processes');
    await until(
      () => leaseOf(dir, blob) === undefined && existsSync(contentPath(dir, blobDigest(blob.digest))),
    );
    assertServed(await Promise.all(nodes.map((node) => get(node, blob))), blob);
    assert.equal(blobGets(upstream).length, 1, 'committed by one process: a hit in all');
  });

  test('a slow client of a follower reads the whole blob after the follower verified (bytes past the window come from the file)', async (t) => {
    // More than the follower's 8 MiB window: a client far behind reads the rest from disk.
    const blob = makeBlob(24 * MiB);
    const upstream = await startUpstream(t, slowBlob(blob));
    const dir = tempDir(t);
    const [leader, follower] = [
      await startNode(t, dir, upstream.port),
      await startNode(t, dir, upstream.port),
    ];
    const led = get(leader as Node, blob);
    await until(() => leaseOf(dir, blob)?.state === 'streaming');
    // Connected, but reads nothing until the fill is committed and the follower has verified.
    const slow = pausedGet(follower as Node, blob);
    assertServed([await led], blob);
    await until(
      () => leaseOf(dir, blob) === undefined && existsSync(contentPath(dir, blobDigest(blob.digest))),
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    assertServed([await slow.resume()], blob);
    assert.equal(blobGets(upstream).length, 1, 'one upstream GET');
  });

  for (const ignoreRange of [false, true]) {
    test(`kill -9 of the leader mid-fill: followers finish${ignoreRange ? ' (upstream ignores Range: 200)' : ''}`, async (t) => {
      const blob = makeBlob(8 * MiB);
      const stallAfter = 3 * MiB;
      const upstream = await startUpstream(t, slowBlob(blob, { stallAfter, ignoreRange }));
      const dir = tempDir(t);
      const nodes = await Promise.all([0, 1, 2].map(() => startNode(t, dir, upstream.port)));
      const pending = nodes.map((node) => Promise.all([get(node, blob), get(node, blob)]));
      let lease: LeaseRecord | undefined;
      await until(() => {
        lease = leaseOf(dir, blob);
        if (lease?.state !== 'streaming') return false;
        const spool = join(dir, 'drp-spool', lease.spool);
        return existsSync(spool) && statSync(spool).size === stallAfter;
      });
      const leader = nodes.find((node) => node.child.pid === lease?.pid);
      assert.ok(leader, 'the lease names one of the processes');
      leader.child.kill('SIGKILL');
      const results = await Promise.all(pending);
      for (const [i, node] of nodes.entries()) {
        // The killed leader's own clients are cut (never a clean end with wrong bytes).
        if (node === leader)
          for (const r of results[i] ?? []) assert.ok(!r.complete || r.body.equals(blob.data));
        else assertServed(results[i] ?? [], blob);
      }
      const gets = blobGets(upstream);
      assert.equal(gets.length, 2, 'the first GET and one resume');
      assert.equal(gets[0]?.headers.range, undefined);
      assert.equal(gets[1]?.headers.range, `bytes=${stallAfter}-`, 'resumed at the spool length');
      await until(() => existsSync(contentPath(dir, blobDigest(blob.digest))));
      const stored = readFileSync(contentPath(dir, blobDigest(blob.digest)));
      assert.ok(stored.equals(blob.data), 'committed whole and right');
    });
  }

  test('kill -9 of the only process mid-fill, then a new one: it takes the dead lease over, resumes with Range and serves the whole blob', async (t) => {
    const blob = makeBlob(12 * MiB);
    const stallAfter = 3 * MiB;
    const upstream = await startUpstream(t, slowBlob(blob, { stallAfter }));
    const dir = tempDir(t);
    const first = await startNode(t, dir, upstream.port);
    const cut = get(first, blob);
    await until(() => {
      const lease = leaseOf(dir, blob);
      if (lease?.state !== 'streaming') return false;
      const spool = join(dir, 'drp-spool', lease.spool);
      return existsSync(spool) && statSync(spool).size === stallAfter;
    });
    first.child.kill('SIGKILL');
    assert.ok(!(await cut).complete, "the killed process's client is cut");
    // A restart: the lease names a dead pid of this host, so it is stale at once.
    const second = await startNode(t, dir, upstream.port);
    assertServed(await Promise.all([get(second, blob), get(second, blob)]), blob);
    const gets = blobGets(upstream);
    assert.equal(gets.length, 2, 'the first GET and one resume');
    assert.equal(gets[1]?.headers.range, `bytes=${stallAfter}-`, 'resumed at the spool length');
    await until(() => existsSync(contentPath(dir, blobDigest(blob.digest))));
    assert.ok(
      readFileSync(contentPath(dir, blobDigest(blob.digest))).equals(blob.data),
      'committed whole and right',
    );
  });

  test('a leader that writes a wrong byte: no follower serves the blob whole, nothing is committed', async (t) => {
    const blob = makeBlob(4 * MiB);
    const upstream = await startUpstream(t, slowBlob(blob));
    const dir = tempDir(t);
    const bad = await startNode(t, dir, upstream.port, { CORRUPT_AT: String(MiB + 5) });
    const others = await Promise.all([0, 1].map(() => startNode(t, dir, upstream.port)));
    const first = get(bad, blob);
    await until(() => leaseOf(dir, blob) !== undefined);
    const responses = await Promise.all([
      first,
      ...others.flatMap((node) => [get(node, blob), get(node, blob)]),
    ]);
    for (const r of responses) assert.ok(!r.complete, 'cut, never a clean end');
    await until(() => leaseOf(dir, blob) === undefined);
    assert.equal(existsSync(contentPath(dir, blobDigest(blob.digest))), false, 'nothing committed');
    assert.equal(blobGets(upstream).length, 1);
  });

  test('the leader is declined (401): followers do not hang, they fetch with their own credentials', async (t) => {
    const blob = makeBlob(2 * MiB);
    const upstream = await startUpstream(t, slowBlob(blob, { needsAuth: true }));
    const dir = tempDir(t);
    const nodes = await Promise.all([0, 1, 2].map(() => startNode(t, dir, upstream.port)));
    const [a, b, c] = nodes as [Node, Node, Node];
    const anonymous = get(a, blob);
    await until(() => leaseOf(dir, blob) !== undefined);
    const auth = { authorization: 'Bearer token' };
    const [declined, ...served] = await Promise.all([
      anonymous,
      get(b, blob, auth),
      get(c, blob, auth),
      get(c, blob, auth),
    ]);
    assert.equal(declined?.status, 401, 'the leader relays its own answer');
    assertServed(served, blob);
    const gets = blobGets(upstream);
    assert.equal(gets.filter((r) => r.headers.authorization).length, 1, 'one GET for the blob itself');
    assert.equal(gets.length, 2, 'and the declined one');
  });

  test('a stale lease with many would-be takers (separate processes): exactly one wins', async (t) => {
    const blob = makeBlob(1000);
    const dir = tempDir(t);
    const leases = join(dir, 'drp-leases');
    for (let round = 0; round < 2; round += 1) {
      mkdirSync(leases, { recursive: true });
      const staleId = `stale-${round}`;
      const stale: LeaseRecord = {
        id: staleId,
        host: 'another-host',
        ns: '1',
        pid: 1,
        spool: '00000000-0000-4000-8000-000000000001.part',
        state: 'streaming',
      };
      writeFileSync(new LeaseDir(leases).path({ d: blobDigest(blob.digest) }), encodeRecord(stale));
      const takers = [0, 1, 2, 3, 4, 5].map(() =>
        spawn(process.execPath, ['--import', 'tsx', TAKER], {
          env: { ...process.env, LEASE_DIR: leases, DIGEST: blob.digest, STALE_ID: staleId },
          stdio: ['ignore', 'pipe', 'inherit'],
        }),
      );
      for (const taker of takers) t.after(() => taker.kill('SIGKILL'));
      const said = await Promise.all(
        takers.map(
          (taker) =>
            new Promise<string>((resolve) =>
              taker.stdout?.once('data', (b: Buffer) => resolve(b.toString().trim())),
            ),
        ),
      );
      const won = said.filter((s) => s.startsWith('won '));
      assert.equal(won.length, 1, `one winner: ${said.join(', ')}`);
      assert.equal(said.filter((s) => s === 'lost').length, takers.length - 1);
      assert.equal(leaseOf(dir, blob)?.id, won[0]?.slice(4), "the lease file is the winner's");
      for (const taker of takers) taker.kill('SIGKILL');
      await until(() => takers.every((taker) => taker.exitCode !== null || taker.signalCode !== null));
      rmSync(leases, { recursive: true, force: true });
    }
  });
});
