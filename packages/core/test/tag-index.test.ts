// The tag index stays bounded whatever clients send (every Authorization value is an auth class
// of its own), its bounds hold across a restart, and its bytes are known for the size cap.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { MAX_VARIANTS_PER_TAG, TAGS_DIR, type TagEntry, TagIndex } from '../src/store/tag-index.ts';

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'drp-tags-'));
  dirs.push(dir);
  return dir;
}

function entry(tag: string, authClass: string, at = 0): TagEntry {
  return {
    registry: 'registry.test:443',
    name: 'team/app',
    tag,
    accept: 'application/vnd.oci.image.index.v1+json',
    authClass,
    digest: `sha256:${'a'.repeat(64)}`,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    size: 100,
    fetchedAt: at,
    tier: 'default',
  };
}

function files(cacheDir: string): string[] {
  const root = join(cacheDir, TAGS_DIR);
  return readdirSync(root).flatMap((d) => readdirSync(join(root, d)).map((f) => join(root, d, f)));
}

test('one tag keeps at most MAX_VARIANTS_PER_TAG auth classes, the newest', async () => {
  const cacheDir = tempDir();
  const index = new TagIndex(cacheDir);
  await index.load();
  for (let i = 0; i < MAX_VARIANTS_PER_TAG + 40; i += 1) await index.put(entry('v1', `bearer:${i}`));
  assert.equal(files(cacheDir).length, MAX_VARIANTS_PER_TAG);
  assert.equal(index.entries, MAX_VARIANTS_PER_TAG);
  assert.equal(await index.get(entry('v1', 'bearer:0')), undefined);
  assert.ok(await index.get(entry('v1', `bearer:${MAX_VARIANTS_PER_TAG + 39}`)));
  for (const file of files(cacheDir)) assert.equal(statSync(file).mode & 0o777, 0o600);
});

test('the whole index is capped by entries and bytes, across a restart, and its bytes are counted', async () => {
  const cacheDir = tempDir();
  const index = new TagIndex(cacheDir, { maxEntries: 50, maxBytes: 1_000_000 });
  await index.load();
  for (let i = 0; i < 80; i += 1) await index.put(entry(`t${i}`, 'anonymous'));
  assert.equal(files(cacheDir).length, 50);
  const onDisk = files(cacheDir).reduce((sum, f) => sum + statSync(f).size, 0);
  assert.equal(index.bytes, onDisk);
  assert.equal(await index.get(entry('t0', 'anonymous')), undefined);

  // Reopened with smaller bounds: trimmed at load, oldest first.
  const small = new TagIndex(cacheDir, { maxEntries: 1000, maxBytes: Math.floor(onDisk / 2) });
  await small.load();
  assert.ok(small.bytes <= onDisk / 2);
  assert.equal(files(cacheDir).length, small.entries);
  assert.ok(await small.get(entry('t79', 'anonymous')));
});

test('two processes on one index: rewrites and invalidations are seen at once, the per-tag bound counts both', async () => {
  const cacheDir = tempDir();
  const [a, b] = [new TagIndex(cacheDir), new TagIndex(cacheDir)];
  await a.load();
  await b.load();
  const first = entry('v1', 'anonymous', 1);
  await a.put(first);
  assert.equal((await b.get(first))?.fetchedAt, 1);
  assert.equal((await a.get(first))?.fetchedAt, 1); // remembered by a
  await b.put({ ...first, digest: `sha256:${'b'.repeat(64)}`, fetchedAt: 2 });
  assert.equal((await a.get(first))?.digest, `sha256:${'b'.repeat(64)}`, "a sees b's rewrite");
  await b.invalidate(first); // a push through b
  assert.equal(await a.get(first), undefined, "a sees b's invalidation");

  for (let i = 0; i < 24; i += 1) await a.put(entry('v2', `bearer:a${i}`));
  for (let i = 0; i < 24; i += 1) await b.put(entry('v2', `bearer:b${i}`));
  const v2 = files(cacheDir).length;
  assert.equal(v2, MAX_VARIANTS_PER_TAG, 'one bound for the tag, whoever wrote the variants');
  assert.equal(await b.get(entry('v2', 'bearer:a0')), undefined, 'the oldest went first');
  assert.ok(await b.get(entry('v2', 'bearer:b23')));
});
