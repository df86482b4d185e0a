// http/send.ts: the send buffers of all responses stay within one budget, and a response whose
// chunk size changes while it is sent (other responses start or end) still sends every byte in order.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { pump, readAtSource, SEND_CHUNK, sendChunkSize } from '../src/http/send.ts';

test('chunk size per response: 1 MiB up to 4 responses, halving down to 256 KiB from 16', () => {
  assert.equal(sendChunkSize(1), SEND_CHUNK);
  assert.equal(sendChunkSize(4), SEND_CHUNK);
  assert.equal(sendChunkSize(5), SEND_CHUNK / 2);
  assert.equal(sendChunkSize(8), SEND_CHUNK / 2);
  assert.equal(sendChunkSize(16), SEND_CHUNK / 4);
  assert.equal(sendChunkSize(100), SEND_CHUNK / 4);
});

/** A slow client: takes each write after a tick and records the sizes it was given. */
function sink(): { out: Writable; hash: () => string; sizes: number[] } {
  const h = createHash('sha256');
  const sizes: number[] = [];
  const out = new Writable({
    highWaterMark: 64 * 1024,
    write(chunk: Buffer, _enc, done) {
      h.update(chunk);
      sizes.push(chunk.length);
      setImmediate(done);
    },
  });
  return { out, hash: () => h.digest('hex'), sizes };
}

test('every byte arrives in order while the number of concurrent responses, and so the chunk size, changes', async () => {
  const body = randomBytes(12 * SEND_CHUNK + 12345);
  const read = async (into: Buffer, position: number) => {
    const n = body.copy(into, 0, position);
    return into.subarray(0, n);
  };
  const expected = createHash('sha256').update(body).digest('hex');
  const first = sink();
  const running = pump(first.out, readAtSource(read, 0, body.length));
  // While the first is sending, 15 more start (the chunk size drops), then end (it grows again).
  await new Promise((r) => setTimeout(r, 5));
  const others = Array.from({ length: 15 }, () => sink());
  await Promise.all(others.map((o) => pump(o.out, readAtSource(read, 0, 3 * SEND_CHUNK))));
  await running;
  assert.equal(first.hash(), expected);
  assert.ok(Math.max(...first.sizes) <= SEND_CHUNK);
  for (const o of others) {
    assert.equal(
      o.hash(),
      createHash('sha256')
        .update(body.subarray(0, 3 * SEND_CHUNK))
        .digest('hex'),
    );
    // The first chunk is sized before all 16 have started; every later one within the budget.
    assert.ok(Math.max(...o.sizes.slice(1)) <= SEND_CHUNK / 4, `${o.sizes}`);
  }
  assert.ok(
    first.sizes.includes(SEND_CHUNK / 4) && first.sizes.includes(SEND_CHUNK),
    'the size changed both ways',
  );
});
