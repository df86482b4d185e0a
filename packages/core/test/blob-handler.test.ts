import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import cacache from 'cacache';
import {
  blobPath,
  blobServer,
  delay,
  makeBlob,
  request,
  sha256,
  startFront,
  startUpstream,
  tempDir,
  until,
} from './blob-helpers.ts';

describe('blob handler', () => {
  test('a miss is fetched once and stored; the second GET is a hit with no upstream request', async (t) => {
    const blob = makeBlob(3_000_000);
    const upstream = await startUpstream(t, blobServer(new Map([[blob.digest, blob.data]])));
    const dir = tempDir(t);
    const front = await startFront(t, upstream.port, { cacheDir: dir });

    const first = await front.get(blobPath(blob.digest));
    assert.equal(first.status, 200);
    assert.equal(first.headers['x-docker-registry-proxy-cache-upstream-status'], 'MISS');
    assert.equal(first.headers['content-length'], String(blob.data.length));
    assert.equal(first.headers['docker-content-digest'], blob.digest);
    assert.ok(first.body.equals(blob.data));
    await until(() => front.cache.stats().entries === 1);

    const second = await front.get(blobPath(blob.digest, 'other/repo'));
    assert.equal(second.status, 200);
    assert.equal(second.headers['x-docker-registry-proxy-cache-upstream-status'], 'HIT');
    assert.equal(second.headers.etag, `"${blob.digest}"`);
    assert.equal(second.headers['accept-ranges'], 'bytes');
    assert.equal(second.headers['content-length'], String(blob.data.length));
    assert.ok(second.body.equals(blob.data));
    assert.equal(upstream.count('GET'), 1);

    // The store is plain cacache, keyed by digest, content at the digest's own hash.
    const info = await cacache.get.info(dir, `blob:${blob.digest}`);
    assert.equal(info?.size, blob.data.length);
    const stats = front.cache.stats();
    assert.equal(stats.hits, 1);
    assert.equal(stats.misses, 1);
    assert.equal(stats.fills, 1);
  });

  test('concurrent requests for one uncached blob make one upstream GET; all get the bytes', async (t) => {
    const blob = makeBlob(8_000_000);
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const upstream = await startUpstream(t, async (_req, res) => {
      res.writeHead(200, { 'content-length': blob.data.length });
      res.write(blob.data.subarray(0, 1_000_000));
      await gate;
      res.end(blob.data.subarray(1_000_000));
    });
    const front = await startFront(t, upstream.port, { cacheDir: tempDir(t) });
    const responses = Array.from({ length: 8 }, () => front.get(blobPath(blob.digest)));
    await until(() => upstream.count('GET') >= 1);
    await delay(100);
    release();
    const all = await Promise.all(responses);
    for (const r of all) {
      assert.equal(r.status, 200);
      assert.ok(r.complete);
      assert.ok(r.body.equals(blob.data));
    }
    assert.equal(upstream.count('GET'), 1);
  });

  test('clients receive bytes before the upstream download has finished', async (t) => {
    const blob = makeBlob(2_000_000);
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const upstream = await startUpstream(t, async (_req, res) => {
      res.writeHead(200, { 'content-length': blob.data.length });
      res.write(blob.data.subarray(0, 1_000_000));
      await gate;
      res.end(blob.data.subarray(1_000_000));
    });
    const front = await startFront(t, upstream.port, { cacheDir: tempDir(t) });
    const http = await import('node:http');
    const received = await new Promise<{ got: number; rest: Promise<Buffer> }>((resolve, reject) => {
      const req = http.request(
        { port: front.port, host: '127.0.0.1', path: blobPath(blob.digest) },
        (res) => {
          const chunks: Buffer[] = [];
          let got = 0;
          let resolved = false;
          const rest = new Promise<Buffer>((done) => res.once('end', () => done(Buffer.concat(chunks))));
          res.on('data', (c: Buffer) => {
            chunks.push(c);
            got += c.length;
            if (!resolved && got >= 1_000_000) {
              resolved = true;
              resolve({ got, rest });
            }
          });
        },
      );
      req.once('error', reject);
      req.end();
    });
    // The first megabyte arrived while upstream is still holding the rest back.
    assert.ok(received.got >= 1_000_000);
    release();
    assert.ok((await received.rest).equals(blob.data));
  });

  test('a fill continues and commits after every client has gone', async (t) => {
    const blob = makeBlob(2_000_000);
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const upstream = await startUpstream(t, async (_req, res) => {
      res.writeHead(200, { 'content-length': blob.data.length });
      res.write(blob.data.subarray(0, 500_000));
      await gate;
      res.end(blob.data.subarray(500_000));
    });
    const front = await startFront(t, upstream.port, { cacheDir: tempDir(t) });
    const http = await import('node:http');
    await new Promise<void>((resolve) => {
      const req = http.request(
        { port: front.port, host: '127.0.0.1', path: blobPath(blob.digest) },
        (res) => {
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        },
      );
      req.on('error', () => undefined);
      req.end();
    });
    release();
    await until(() => front.cache.stats().entries === 1);
    const hit = await front.get(blobPath(blob.digest));
    assert.equal(hit.headers['x-docker-registry-proxy-cache-upstream-status'], 'HIT');
    assert.ok(hit.body.equals(blob.data));
    assert.equal(upstream.count('GET'), 1);
  });

  for (const fault of ['corrupt', 'truncate', 'overlong'] as const) {
    test(`an upstream that sends ${fault} bytes stores nothing and the client sees an error`, async (t) => {
      const blob = makeBlob(1_500_000);
      const upstream = await startUpstream(t, (_req, res) => {
        res.writeHead(200, { 'content-length': blob.data.length });
        if (fault === 'corrupt') {
          const bad = Buffer.from(blob.data);
          bad[bad.length - 10] = (bad[bad.length - 10] ?? 0) ^ 0xff;
          res.end(bad);
        } else if (fault === 'truncate') {
          res.write(blob.data.subarray(0, 1_000_000));
          setTimeout(() => res.destroy(), 50);
        } else {
          // Declared length of the blob, more bytes sent: Node's parser cuts it; treat as an error.
          res.end(Buffer.concat([blob.data.subarray(0, -1), Buffer.from('xy')]));
        }
      });
      const dir = tempDir(t);
      const front = await startFront(t, upstream.port, { cacheDir: dir });
      const failures: string[] = [];
      front.cache.events.on('verify-failed', (e) => failures.push(e.reason));
      const r = await front.get(blobPath(blob.digest));
      assert.equal(r.complete, false, 'the response must not look complete');
      assert.ok(r.body.length < blob.data.length);
      assert.equal(front.cache.stats().entries, 0);
      assert.deepEqual(Object.keys(await cacache.ls(dir)), []);
      assert.equal(failures.length, 1);
    });
  }

  test('a stalled upstream times out: the client sees an error, nothing is stored', async (t) => {
    const blob = makeBlob(1_000_000);
    const upstream = await startUpstream(t, (_req, res) => {
      res.writeHead(200, { 'content-length': blob.data.length });
      res.write(blob.data.subarray(0, 300_000));
      // ...and never another byte.
    });
    const front = await startFront(t, upstream.port, {
      cacheDir: tempDir(t),
      upstream: { readTimeout: '300ms' },
    });
    const r = await front.get(blobPath(blob.digest));
    assert.equal(r.complete, false);
    assert.equal(front.cache.stats().entries, 0);
  });

  test('non-200 upstream answers are relayed untouched and not cached', async (t) => {
    const blob = makeBlob(1000);
    let calls = 0;
    const upstream = await startUpstream(t, (req, res) => {
      calls += 1;
      if (!req.headers.authorization) {
        res.writeHead(401, {
          'www-authenticate': 'Bearer realm="https://auth.example/token",service="reg"',
          'content-type': 'application/json',
        });
        res.end('{"errors":[{"code":"UNAUTHORIZED"}]}');
        return;
      }
      blobServer(new Map([[blob.digest, blob.data]]))(req, res);
    });
    const front = await startFront(t, upstream.port, { cacheDir: tempDir(t) });
    const denied = await front.get(blobPath(blob.digest));
    assert.equal(denied.status, 401);
    assert.match(String(denied.headers['www-authenticate']), /^Bearer realm=/);
    assert.equal(denied.body.toString(), '{"errors":[{"code":"UNAUTHORIZED"}]}');
    assert.equal(front.cache.stats().entries, 0);

    const missing = await front.get(blobPath(makeBlob(10).digest), { authorization: 'Bearer t' });
    assert.equal(missing.status, 404);

    const ok = await front.get(blobPath(blob.digest), { authorization: 'Bearer t' });
    assert.equal(ok.status, 200);
    assert.ok(ok.body.equals(blob.data));
    assert.equal(calls, 3);
  });

  test('HEAD: a hit makes no upstream request; a miss is forwarded as HEAD', async (t) => {
    const blob = makeBlob(500_000);
    const upstream = await startUpstream(t, blobServer(new Map([[blob.digest, blob.data]])));
    const front = await startFront(t, upstream.port, { cacheDir: tempDir(t) });
    const miss = await front.get(blobPath(blob.digest), {}, 'HEAD');
    assert.equal(miss.status, 200);
    assert.equal(miss.headers['content-length'], String(blob.data.length));
    assert.equal(upstream.count('HEAD'), 1);
    assert.equal(upstream.count('GET'), 0);
    assert.equal(front.cache.stats().entries, 0);

    await front.get(blobPath(blob.digest));
    await until(() => front.cache.stats().entries === 1);
    const hit = await front.get(blobPath(blob.digest), {}, 'HEAD');
    assert.equal(hit.status, 200);
    assert.equal(hit.headers['content-length'], String(blob.data.length));
    assert.equal(hit.headers['docker-content-digest'], blob.digest);
    assert.equal(hit.body.length, 0);
    assert.equal(upstream.count('HEAD'), 1);
    assert.equal(upstream.count('GET'), 1);
  });

  test('Range on a hit: 206 for one range, If-Range, 416, multiple ranges get the whole blob', async (t) => {
    const blob = makeBlob(100_000);
    const upstream = await startUpstream(t, blobServer(new Map([[blob.digest, blob.data]])));
    const front = await startFront(t, upstream.port, { cacheDir: tempDir(t) });
    await front.get(blobPath(blob.digest));
    await until(() => front.cache.stats().entries === 1);
    const path = blobPath(blob.digest);

    const r1 = await front.get(path, { range: 'bytes=100-199' });
    assert.equal(r1.status, 206);
    assert.equal(r1.headers['content-range'], `bytes 100-199/${blob.data.length}`);
    assert.ok(r1.body.equals(blob.data.subarray(100, 200)));

    const suffix = await front.get(path, { range: 'bytes=-10' });
    assert.equal(suffix.status, 206);
    assert.ok(suffix.body.equals(blob.data.subarray(-10)));

    const open = await front.get(path, { range: 'bytes=99990-' });
    assert.ok(open.body.equals(blob.data.subarray(99_990)));

    const ifRange = await front.get(path, { range: 'bytes=0-9', 'if-range': `"${blob.digest}"` });
    assert.equal(ifRange.status, 206);
    const staleIfRange = await front.get(path, { range: 'bytes=0-9', 'if-range': '"sha256:other"' });
    assert.equal(staleIfRange.status, 200);
    assert.equal(staleIfRange.body.length, blob.data.length);

    const bad = await front.get(path, { range: 'bytes=200000-' });
    assert.equal(bad.status, 416);
    assert.equal(bad.headers['content-range'], `bytes */${blob.data.length}`);

    const multi = await front.get(path, { range: 'bytes=0-1,5-6' });
    assert.equal(multi.status, 200);
    assert.equal(multi.body.length, blob.data.length);

    const notModified = await front.get(path, { 'if-none-match': `"${blob.digest}"` });
    assert.equal(notModified.status, 304);
    assert.equal(upstream.count('GET'), 1);
  });

  test('Range on a miss: the client gets the right bytes and the blob is cached once', async (t) => {
    const blob = makeBlob(3_000_000);
    const upstream = await startUpstream(t, blobServer(new Map([[blob.digest, blob.data]])));
    const front = await startFront(t, upstream.port, { cacheDir: tempDir(t) });
    const [a, b] = await Promise.all([
      front.get(blobPath(blob.digest), { range: 'bytes=1000000-1000999' }),
      front.get(blobPath(blob.digest), { range: 'bytes=2999000-' }),
    ]);
    assert.equal(a.status, 206);
    assert.ok(a.body.equals(blob.data.subarray(1_000_000, 1_001_000)));
    assert.equal(b.status, 206);
    assert.ok(b.body.equals(blob.data.subarray(2_999_000)));
    assert.equal(upstream.count('GET'), 1);
    assert.equal(upstream.seen[0]?.headers.range, undefined);
    await until(() => front.cache.stats().entries === 1);
    const full = await front.get(blobPath(blob.digest));
    assert.ok(full.body.equals(blob.data));
    assert.equal(upstream.count('GET'), 1);
  });

  test('invalid names and digests get 400 with an OCI body and never reach upstream', async (t) => {
    const upstream = await startUpstream(t, (_req, res) => {
      res.end();
    });
    const front = await startFront(t, upstream.port, { cacheDir: tempDir(t) });
    for (const path of [
      '/v2/library/app/blobs/sha256:../../etc/passwd',
      '/v2/library/app/blobs/sha256:ABCDEF',
      '/v2/library/app/blobs/md5:0123456789abcdef0123456789abcdef',
      '/v2/Library/App/blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000',
      '/v2/library/app/blobs/sha256%3A..%2F..%2Fx',
    ]) {
      const r = await request(front.port, path);
      assert.equal(r.status, 400, path);
      const body = JSON.parse(r.body.toString()) as { errors: { code: string }[] };
      assert.ok(['DIGEST_INVALID', 'NAME_INVALID', 'UNSUPPORTED'].includes(body.errors[0]?.code ?? ''), path);
    }
    assert.equal(upstream.seen.length, 0);
  });

  test('the client Authorization reaches upstream on a fill; Range and encodings do not', async (t) => {
    const blob = makeBlob(1000);
    const upstream = await startUpstream(t, blobServer(new Map([[blob.digest, blob.data]])));
    const front = await startFront(t, upstream.port, { cacheDir: tempDir(t) });
    await front.get(blobPath(blob.digest), {
      authorization: 'Bearer abc',
      range: 'bytes=0-1',
      'accept-encoding': 'gzip',
    });
    const seen = upstream.seen[0];
    assert.equal(seen?.headers.authorization, 'Bearer abc');
    assert.equal(seen?.headers.range, undefined);
    assert.equal(seen?.headers['accept-encoding'], 'identity');
  });

  test('configured credentials are injected when the client sends none', async (t) => {
    const blob = makeBlob(1000);
    const upstream = await startUpstream(t, blobServer(new Map([[blob.digest, blob.data]])));
    const front = await startFront(t, upstream.port, {
      cacheDir: tempDir(t),
      credentials: [{ host: '127.0.0.1', username: 'u', password: 'p' }],
    });
    await front.get(blobPath(blob.digest));
    assert.equal(upstream.seen[0]?.headers.authorization, `Basic ${Buffer.from('u:p').toString('base64')}`);
    assert.equal(sha256(blob.data), blob.digest);
  });
});

describe('verifyBlobAccess', () => {
  async function privateUpstream(
    t: { after(fn: () => unknown): void },
    blob: { digest: string; data: Buffer },
  ) {
    return startUpstream(t, (req, res) => {
      if (req.headers.authorization !== 'Bearer good') {
        res.writeHead(401, {
          'www-authenticate': 'Bearer realm="https://auth.example/token",scope="repository:team/app:pull"',
          'content-type': 'application/json',
        });
        res.end('{"errors":[{"code":"UNAUTHORIZED"}]}');
        return;
      }
      blobServer(new Map([[blob.digest, blob.data]]))(req, res);
    });
  }

  test('a client without access never gets a blob another client cached', async (t) => {
    const blob = makeBlob(200_000);
    const upstream = await privateUpstream(t, blob);
    const front = await startFront(t, upstream.port, { cacheDir: tempDir(t), verifyBlobAccess: true });
    const path = blobPath(blob.digest, 'team/app');
    const owner = await front.get(path, { authorization: 'Bearer good' });
    assert.ok(owner.body.equals(blob.data));
    await until(() => front.cache.stats().entries === 1);

    for (const headers of [{}, { authorization: 'Bearer stolen' }]) {
      const denied = await front.get(path, headers);
      assert.equal(denied.status, 401);
      assert.match(String(denied.headers['www-authenticate']), /^Bearer realm=/);
      assert.equal(JSON.parse(denied.body.toString()).errors[0].code, 'UNAUTHORIZED');
      const deniedHead = await front.get(path, headers, 'HEAD');
      assert.equal(deniedHead.status, 401);
    }
    // The owner's access was proven by the fill itself: no HEAD for it; a second client with
    // access is checked once, then remembered.
    const headsBefore = upstream.count('HEAD');
    await front.get(path, { authorization: 'Bearer good' });
    assert.equal(upstream.count('HEAD'), headsBefore);
    assert.equal(upstream.count('GET'), 1);
  });

  test('a redirect answer to the access check counts as allowed', async (t) => {
    const blob = makeBlob(1000);
    const upstream = await startUpstream(t, (req, res) => {
      if (req.method === 'HEAD') {
        res.writeHead(307, { location: 'https://cdn.example/blob?sig=1' });
        res.end();
        return;
      }
      blobServer(new Map([[blob.digest, blob.data]]))(req, res);
    });
    const front = await startFront(t, upstream.port, { cacheDir: tempDir(t), verifyBlobAccess: true });
    await front.get(blobPath(blob.digest), { authorization: 'Bearer a' });
    await until(() => front.cache.stats().entries === 1);
    const other = await front.get(blobPath(blob.digest), { authorization: 'Bearer b' });
    assert.equal(other.status, 200);
    assert.ok(other.body.equals(blob.data));
    assert.equal(upstream.count('HEAD'), 1);
  });

  test('off: a cached blob is served to anyone (the original behaviour)', async (t) => {
    const blob = makeBlob(1000);
    const upstream = await privateUpstream(t, blob);
    const front = await startFront(t, upstream.port, { cacheDir: tempDir(t), verifyBlobAccess: 'off' });
    await front.get(blobPath(blob.digest, 'team/app'), { authorization: 'Bearer good' });
    await until(() => front.cache.stats().entries === 1);
    const anyone = await front.get(blobPath(blob.digest, 'team/app'));
    assert.equal(anyone.status, 200);
    assert.equal(upstream.count('HEAD'), 0);
  });

  test("by default (private) a blob fetched with a client's own credentials is checked for others", async (t) => {
    const blob = makeBlob(1000);
    const upstream = await privateUpstream(t, blob);
    const front = await startFront(t, upstream.port, { cacheDir: tempDir(t) });
    await front.get(blobPath(blob.digest, 'team/app'), { authorization: 'Bearer good' });
    await until(() => front.cache.stats().entries === 1);
    const anyone = await front.get(blobPath(blob.digest, 'team/app'));
    assert.equal(anyone.status, 401);
    assert.equal(anyone.body.equals(blob.data), false);
    assert.equal(upstream.count('HEAD'), 1);
    // The same credentials again: no check, served from the cache.
    const again = await front.get(blobPath(blob.digest, 'team/app'), { authorization: 'Bearer good' });
    assert.equal(again.status, 200);
    assert.equal(upstream.count('HEAD'), 1);
  });

  test('by default a blob fetched anonymously stays shared: no check for anyone', async (t) => {
    const blob = makeBlob(1000);
    const upstream = await startUpstream(t, blobServer(new Map([[blob.digest, blob.data]])));
    const front = await startFront(t, upstream.port, { cacheDir: tempDir(t) });
    await front.get(blobPath(blob.digest, 'team/app'));
    await until(() => front.cache.stats().entries === 1);
    const other = await front.get(blobPath(blob.digest, 'team/app'), { authorization: 'Bearer someone' });
    assert.equal(other.status, 200);
    assert.ok(other.body.equals(blob.data));
    assert.equal(upstream.count('HEAD'), 0);
  });
});

test('verifyBlobAccess: a joiner whose check outlasts the fill still gets every byte', async (t) => {
  // Bigger than the in-memory window of recent bytes: the joiner must read the spool file.
  const blob = makeBlob(12_000_000);
  let openGate: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => {
    openGate = resolve;
  });
  let front: Awaited<ReturnType<typeof startFront>> | undefined;
  const upstream = await startUpstream(t, async (req, res) => {
    if (req.method === 'HEAD') {
      // Let the fill finish and commit before answering the joiner's access check.
      openGate();
      await until(() => front?.cache.stats().entries === 1 && front.cache.stats().activeFills === 0);
      res.writeHead(200, { 'content-length': blob.data.length });
      res.end();
      return;
    }
    res.writeHead(200, { 'content-length': blob.data.length });
    res.write(blob.data.subarray(0, 500_000));
    await gate;
    res.end(blob.data.subarray(500_000));
  });
  front = await startFront(t, upstream.port, { cacheDir: tempDir(t), verifyBlobAccess: true });
  const leader = front.get(blobPath(blob.digest), { authorization: 'Bearer a' });
  await until(() => upstream.count('GET') === 1);
  const joiner = front.get(blobPath(blob.digest), { authorization: 'Bearer b' });
  const [a, b] = await Promise.all([leader, joiner]);
  assert.ok(a.body.equals(blob.data));
  assert.equal(b.status, 200);
  assert.ok(b.complete);
  assert.ok(b.body.equals(blob.data));
  assert.equal(upstream.count('GET'), 1);
});
