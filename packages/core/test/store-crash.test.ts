/**
 * Crash consistency: a process killed (SIGKILL) at any point of a fill leaves no partial entry
 * visible when the store is opened again; a blob committed before the kill is intact.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, utimesSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import cacache from 'cacache';
import { BlobStore } from '../src/store/blob-store.ts';
import { blobPath, makeBlob, startUpstream, tempDir, until } from './blob-helpers.ts';

const CHILD = join(import.meta.dirname, 'fixtures', 'blob-crash-child.ts');

function startChild(cacheDir: string, upstreamPort: number): Promise<{ child: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD], {
      env: { ...process.env, CACHE_DIR: cacheDir, UPSTREAM_PORT: String(upstreamPort) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    child.once('error', reject);
    child.stdout?.once('data', (b: Buffer) => resolve({ child, port: Number(b.toString().trim()) }));
  });
}

function kill(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

function contentFiles(dir: string): string[] {
  const root = join(dir, 'content-v2');
  if (!existsSync(root)) return [];
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d, { withFileTypes: true })) {
      if (name.isDirectory()) walk(join(d, name.name));
      else out.push(join(d, name.name));
    }
  };
  walk(root);
  return out;
}

describe('crash consistency', () => {
  test('SIGKILL in the middle of a fill: nothing partial is visible after a restart', async (t) => {
    const blob = makeBlob(6_000_000);
    const upstream = await startUpstream(t, (_req, res) => {
      res.writeHead(200, { 'content-length': blob.data.length });
      res.write(blob.data.subarray(0, 3_000_000)); // then nothing: the kill comes first
    });
    const dir = tempDir(t);
    const { child, port } = await startChild(dir, upstream.port);
    t.after(() => child.kill('SIGKILL'));
    let received = 0;
    await new Promise<void>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path: blobPath(blob.digest) }, (res) => {
        res.on('data', (c: Buffer) => {
          received += c.length;
          if (received >= 1_000_000) resolve();
        });
        res.on('error', () => undefined);
      });
      req.on('error', () => undefined);
    });
    // The spool file exists and holds bytes at this point.
    assert.ok(readdirSync(join(dir, 'drp-spool')).length > 0);
    await kill(child);

    const first = await BlobStore.open({ dir, maxSizeBytes: 1 << 30, inactiveMs: 0 });
    assert.equal(first.stats().entries, 0);
    assert.equal(await first.lookup(blob.digest), undefined);
    assert.deepEqual(contentFiles(dir), []);
    // A fresh spool file may be a live process's fill (the directory is shared): it stays
    // until its mtime is older than the grace, then it is garbage.
    const spoolFiles = readdirSync(join(dir, 'drp-spool'));
    assert.equal(spoolFiles.length, 1);
    await first.close();
    const old = new Date(Date.now() - 11 * 60_000);
    for (const name of spoolFiles) utimesSync(join(dir, 'drp-spool', name), old, old);
    const store = await BlobStore.open({ dir, maxSizeBytes: 1 << 30, inactiveMs: 0 });
    t.after(() => store.close());
    assert.equal(await store.lookup(blob.digest), undefined);
    assert.deepEqual(readdirSync(join(dir, 'drp-spool')), []);
    assert.deepEqual(contentFiles(dir), []);
  });

  test('SIGKILL right after a commit: the blob is there, intact, after a restart', async (t) => {
    const blob = makeBlob(3_000_000);
    const upstream = await startUpstream(t, (_req, res) => {
      res.writeHead(200, { 'content-length': blob.data.length });
      res.end(blob.data);
    });
    const dir = tempDir(t);
    const { child, port } = await startChild(dir, upstream.port);
    t.after(() => child.kill('SIGKILL'));
    await new Promise<void>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port, path: blobPath(blob.digest) }, (res) => {
          res.resume();
          res.on('end', resolve);
        })
        .on('error', reject);
    });
    // Committed = content file renamed into place and the index line appended.
    await until(async () => (await cacache.get.info(dir, `blob:${blob.digest}`)) !== null);
    await kill(child);

    const store = await BlobStore.open({ dir, maxSizeBytes: 1 << 30, inactiveMs: 0 });
    t.after(() => store.close());
    const found = await store.lookup(blob.digest);
    assert.ok(found, 'committed blob survives');
    const data = readFileSync(found.path);
    assert.equal(`sha256:${createHash('sha256').update(data).digest('hex')}`, blob.digest);
  });
});
