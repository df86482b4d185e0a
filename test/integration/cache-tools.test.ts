// `drp-server cache stats|ls|verify|rm|prune` against a cache filled by real skopeo pulls
// through a running daemon, run while that daemon keeps serving the directory.
import assert from 'node:assert/strict';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { createHarness, type Harness } from '../harness/index.ts';
import { BIN, registryNamed, startDaemon } from './daemon-lib.ts';

interface Entry {
  digest: string;
  size: number;
  lastAccess: string;
  kind: 'blob' | 'manifest';
}

function contentFile(cacheDir: string, digest: string): string {
  const hex = digest.slice('sha256:'.length);
  return join(cacheDir, 'content-v2', 'sha256', hex.slice(0, 2), hex.slice(2, 4), hex.slice(4));
}

async function cli(h: Harness, cacheDir: string, ...args: string[]) {
  return h.run(process.execPath, [BIN, 'cache', ...args, '--cache-dir', cacheDir], { check: false });
}

async function setup(t: Parameters<typeof createHarness>[0], env: Record<string, string> = {}) {
  const h = createHarness(t);
  const ca = await h.testCA();
  const registry = await registryNamed(h, 'registry.test');
  const cacheDir = h.tempDir('cache');
  const drp = await startDaemon(h, {
    REGISTRIES: registry.named,
    UPSTREAM_MAPPINGS: 'registry.test=127.0.0.1',
    UPSTREAM_CA_FILE: ca.certPath,
    CACHE_DIR: cacheDir,
    CA_DIR: h.tempDir('ca'),
    ENABLE_MANIFEST_CACHE: 'true',
    CACHE_MAX_SIZE: '64m',
    ...env,
  });
  const pull = (ref: string) => h.pullImage(registry.named, ref, { proxy: drp.url, certDir: drp.certDir });
  return { h, registry, cacheDir, drp, pull };
}

test('cache stats, ls, verify (--fix), rm on a cache filled through the daemon, while it runs', async (t) => {
  const { h, registry, cacheDir, drp, pull } = await setup(t);
  const image = await h.createImage({ layers: [200_000, 700_000] });
  const other = await h.createImage({ layers: [300_000] });
  await registry.push(image, 'team/app:v1');
  await registry.push(other, 'team/tool:v2');
  await pull('team/app:v1');
  await pull('team/tool:v2');

  const blobs = [image, other].flatMap((i) => [i.config.digest, ...i.layers.map((l) => l.digest)]);
  const manifests = [image.manifestDigest, other.manifestDigest];

  // stats --json: every entry (manifests included), the daemon's cap, the tag-index entries.
  const stats = await cli(h, cacheDir, 'stats', '--json');
  assert.equal(stats.code, 0, stats.stderr);
  const parsed = JSON.parse(stats.stdout) as {
    blobs: number;
    bytes: number;
    maxBytes: number | null;
    tags: number;
  };
  const expectedBytes =
    [image, other].reduce((s, i) => s + i.config.size + i.layers.reduce((n, l) => n + l.size, 0), 0) +
    image.manifest.length +
    other.manifest.length;
  assert.deepEqual(parsed, {
    blobs: blobs.length + manifests.length,
    bytes: expectedBytes,
    maxBytes: 64 * 1024 ** 2,
    tags: 2,
  });
  const table = await cli(h, cacheDir, 'stats');
  assert.match(table.stdout, /entries\s+7 \(5 blobs, 2 manifests\)/);

  // ls --json: one object per entry with the fields.
  const ls = await cli(h, cacheDir, 'ls', '--json');
  assert.equal(ls.code, 0, ls.stderr);
  const entries = JSON.parse(ls.stdout) as Entry[];
  assert.deepEqual(entries.map((e) => e.digest).sort(), [...blobs, ...manifests].sort());
  for (const e of entries) {
    assert.equal(e.kind, manifests.includes(e.digest) ? 'manifest' : 'blob', e.digest);
    assert.match(e.lastAccess, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(Date.now() - Date.parse(e.lastAccess) < 120_000, e.lastAccess);
  }
  assert.equal(entries.find((e) => e.digest === image.layers[1]?.digest)?.size, image.layers[1]?.size);
  // Filters use what the tag index and the manifests know.
  const byRepo = JSON.parse((await cli(h, cacheDir, 'ls', '--json', '--repo', 'team/app')).stdout) as Entry[];
  assert.deepEqual(
    byRepo.map((e) => e.digest).sort(),
    [image.manifestDigest, image.config.digest, ...image.layers.map((l) => l.digest)].sort(),
  );
  const bySize = await cli(h, cacheDir, 'ls', '--sort', 'size', '--registry', registry.named);
  assert.ok(
    bySize.stdout.split('\n')[1]?.startsWith(image.layers[1]?.digest.slice(0, 19) ?? '-'),
    bySize.stdout,
  );
  assert.match(bySize.stdout, /team\/tool/);

  // verify: all good, then a layer corrupted on disk (same size, one byte flipped) is named.
  const clean = await cli(h, cacheDir, 'verify');
  assert.equal(clean.code, 0, clean.stdout + clean.stderr);
  const victim = image.layers[0]?.digest ?? '';
  const file = await open(contentFile(cacheDir, victim), 'r+');
  const byte = Buffer.alloc(1);
  await file.read(byte, 0, 1, 1000);
  byte[0] = (byte[0] ?? 0) ^ 0xff;
  await file.write(byte, 0, 1, 1000);
  await file.close();
  const bad = await cli(h, cacheDir, 'verify');
  assert.equal(bad.code, 1);
  assert.deepEqual(
    bad.stdout
      .trim()
      .split('\n')
      .map((l) => l.split(' ')[0]),
    [victim],
  );
  const fixed = await cli(h, cacheDir, 'verify', '--fix');
  assert.equal(fixed.code, 1, 'the cache was not healthy when asked');
  assert.equal((await cli(h, cacheDir, 'verify')).code, 0);
  // The daemon serving the directory answers the removed blob from upstream, with good bytes.
  registry.counter.reset();
  const again = await pull('team/app:v1');
  assert.deepEqual(
    again.layers,
    image.layers.map((l) => l.digest),
  );
  await registry.counter.settle();
  assert.deepEqual(
    registry.counter.requests({ kind: 'blob', method: 'GET' }).map((r) => r.path.split('/').pop()),
    [victim],
  );
  const missLines = drp.requests({ request_type: 'blob-by-digest', upstream_cache_status: 'MISS' });
  assert.ok(missLines.some((l) => String(l.uri).endsWith(victim)));

  // rm: bare hex and sha256: forms; the next request for it is a MISS; an absent digest -> exit 1.
  const target = other.layers[0]?.digest ?? '';
  const absent = `sha256:${'0'.repeat(64)}`;
  const rm = await cli(h, cacheDir, 'rm', target.slice('sha256:'.length), other.config.digest, absent);
  assert.equal(rm.code, 1);
  assert.match(rm.stdout, new RegExp(`removed ${target}`));
  assert.match(rm.stderr, new RegExp(`${absent} is not in the cache`));
  await assert.rejects(readFile(contentFile(cacheDir, target)), { code: 'ENOENT' });
  const before = drp.lines.length;
  registry.counter.reset();
  await pull('team/tool:v2');
  await registry.counter.settle();
  const lines = drp.lines
    .slice(before)
    .filter((l) => l.type === 'request' && l.request_type === 'blob-by-digest');
  assert.equal(lines.find((l) => String(l.uri).endsWith(target))?.upstream_cache_status, 'MISS');
  assert.equal(registry.counter.count({ kind: 'blob', method: 'GET' }), 2, registry.counter.summary());
  // Stored again; the daemon's own accounting agrees with the directory (it forgot the removed
  // entries instead of counting them twice).
  const after = JSON.parse((await cli(h, cacheDir, 'stats', '--json')).stdout) as {
    blobs: number;
    bytes: number;
  };
  assert.equal(after.blobs, 7);
  const status = JSON.parse((await fetch(`${drp.url}/status.json`).then((r) => r.text())) as string) as {
    cacheBytes: number;
    cacheEntries: number;
  };
  assert.equal(status.cacheEntries, 7);
  assert.equal(status.cacheBytes, after.bytes);
});

test('cache prune --older-than and --max-size; usage errors exit 2', async (t) => {
  const { h, registry, cacheDir, pull } = await setup(t);
  const old = await h.createImage({ layers: [400_000] });
  const recent = await h.createImage({ layers: [500_000] });
  await registry.push(old, 'team/old:1');
  await registry.push(recent, 'team/recent:1');
  await pull('team/old:1');
  // The daemon journals access times once a second.
  await new Promise((resolve) => setTimeout(resolve, 8000));
  await pull('team/recent:1');
  // A bound between the two pulls' last uses, as the store recorded them: however long the
  // pulls took on a loaded machine, old is older and recent is newer.
  const used = JSON.parse((await cli(h, cacheDir, 'ls', '--json')).stdout) as Entry[];
  const lastUse = (digests: string[]) =>
    used.filter((e) => digests.includes(e.digest)).map((e) => Date.parse(e.lastAccess));
  const oldest = Math.max(...lastUse([old.manifestDigest, old.config.digest, old.layers[0]?.digest ?? '']));
  const newest = Math.min(
    ...lastUse([recent.manifestDigest, recent.config.digest, recent.layers[0]?.digest ?? '']),
  );
  assert.ok(newest - oldest > 6000, `${newest - oldest} ms apart`);
  // Just after the old entries' last use: the tool starts later than this line runs (seconds
  // on a loaded machine), which moves its cutoff later, towards the recent ones; this leaves it
  // the whole gap between the two pulls rather than half of it.
  const age = `${Date.now() - (oldest + 200)}ms`;

  const dry = await cli(h, cacheDir, 'prune', '--older-than', age, '--dry-run');
  assert.equal(dry.code, 0, dry.stderr);
  const oldDigests = [old.manifestDigest, old.config.digest, old.layers[0]?.digest].sort();
  assert.deepEqual(
    dry.stdout
      .trim()
      .split('\n')
      .map((l) => l.split(' ')[2])
      .sort(),
    oldDigests,
  );
  const aged = await cli(h, cacheDir, 'prune', '--older-than', age);
  assert.equal(aged.code, 0, aged.stderr);
  const left = JSON.parse((await cli(h, cacheDir, 'ls', '--json')).stdout) as Entry[];
  assert.deepEqual(
    left.map((e) => e.digest).sort(),
    [recent.manifestDigest, recent.config.digest, recent.layers[0]?.digest].sort(),
  );

  const sized = await cli(h, cacheDir, 'prune', '--max-size', '100k');
  assert.equal(sized.code, 0, sized.stderr);
  const rest = JSON.parse((await cli(h, cacheDir, 'ls', '--json')).stdout) as Entry[];
  assert.ok(rest.reduce((s, e) => s + e.size, 0) <= 100 * 1024);
  assert.ok(!rest.some((e) => e.digest === recent.layers[0]?.digest), 'the biggest, least recent entry went');

  for (const args of [
    ['prune'],
    ['prune', '--max-size', 'lots'],
    ['prune', '--older-than', 'soon'],
    ['rm', 'xyz'],
    ['frobnicate'],
  ]) {
    const r = await cli(h, cacheDir, ...args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /Usage: drp-server cache/);
  }
});

test('cache prune --max-size keeps its bound while a pull fills the cache', async (t) => {
  const { h, registry, cacheDir, drp, pull } = await setup(t, { CACHE_MAX_SIZE: '1g' });
  const warm = await h.createImage({ layers: [3_000_000, 3_000_000] });
  const big = await h.createImage({ layers: [6_000_000, 6_000_000, 6_000_000, 6_000_000] });
  await registry.push(warm, 'team/warm:1');
  await registry.push(big, 'team/big:1');
  await pull('team/warm:1');
  const bound = 2 * 1024 * 1024;

  const pulling = pull('team/big:1');
  let pruned = 0;
  let done = false;
  void pulling.finally(() => {
    done = true;
  });
  // Prune repeatedly while the pull runs; each run must leave at most `bound` of what it saw.
  let duringPull = 0;
  while (!done || pruned === 0) {
    if (!done) duringPull += 1;
    const r = await cli(h, cacheDir, 'prune', '--max-size', '2m');
    assert.equal(r.code, 0, r.stderr);
    const summary = /(\d+) entries \(([\d.]+ \w+)\) left/.exec(r.stderr);
    assert.ok(summary, r.stderr);
    pruned += 1;
  }
  const result = await pulling;
  assert.ok(duringPull > 0, 'prune ran while the pull was running');
  assert.deepEqual(
    result.layers,
    big.layers.map((l) => l.digest),
    'the pull is unharmed',
  );
  const final = await cli(h, cacheDir, 'prune', '--max-size', '2m');
  assert.equal(final.code, 0);
  const stats = JSON.parse((await cli(h, cacheDir, 'stats', '--json')).stdout) as { bytes: number };
  assert.ok(stats.bytes <= bound, `${stats.bytes} > ${bound}`);
  // The daemon still serves, and its accounting follows the removals.
  await new Promise((resolve) => setTimeout(resolve, 2500));
  const status = JSON.parse(await fetch(`${drp.url}/status.json`).then((r) => r.text())) as {
    cacheBytes: number;
  };
  assert.equal(status.cacheBytes, stats.bytes);
  const again = await pull('team/warm:1');
  assert.equal(again.manifestDigest, warm.manifestDigest);
});

test('the background scrub (CACHE_SCRUB_INTERVAL) removes a blob corrupted on disk; the next pull fetches it again', async (t) => {
  const { h, registry, cacheDir, drp, pull } = await setup(t, { CACHE_SCRUB_INTERVAL: '1s' });
  const image = await h.createImage({ layers: [600_000] });
  await registry.push(image, 'team/scrubbed:1');
  await pull('team/scrubbed:1');
  const layer = image.layers[0]?.digest ?? '';
  const file = await open(contentFile(cacheDir, layer), 'r+');
  await file.write(Buffer.from('corrupt'), 0, 7, 4096);
  await file.close();

  const deadline = Date.now() + 15_000;
  let warning: (typeof drp.lines)[number] | undefined;
  while (!warning && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    warning = drp.lines.find((l) => l.type === 'warning' && String(l.msg).startsWith('scrub removed'));
  }
  assert.ok(warning, 'the scrub logged what it removed');
  assert.equal(warning.level, 'warn');
  assert.deepEqual(warning.corrupt, [layer]);
  await assert.rejects(readFile(contentFile(cacheDir, layer)), { code: 'ENOENT' });
  assert.equal((await cli(h, cacheDir, 'verify')).code, 0);

  registry.counter.reset();
  const before = drp.lines.length;
  const again = await pull('team/scrubbed:1');
  assert.deepEqual(again.layers, [layer]);
  await registry.counter.settle();
  assert.equal(registry.counter.count({ kind: 'blob', method: 'GET' }), 1, registry.counter.summary());
  const line = drp.lines.slice(before).find((l) => l.type === 'request' && String(l.uri).endsWith(layer));
  assert.equal(line?.upstream_cache_status, 'MISS');
});
