// Issuing leaves must not stall other connections: the event loop keeps turning while many
// names are issued at once.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadOrCreateCA } from '../src/index.ts';
import { tempDir } from './helpers.ts';

describe('event loop', () => {
  it('keeps the event loop responsive while 100 leaves are issued concurrently', async (t) => {
    const ca = await loadOrCreateCA({ dir: await tempDir(t) });
    t.after(() => ca.close());
    await ca.issue('warm-up.example'); // JIT and lazy module state, not what is measured
    let last = performance.now();
    let maxLag = 0;
    const probe = setInterval(() => {
      const now = performance.now();
      maxLag = Math.max(maxLag, now - last - 1);
      last = now;
    }, 1);
    try {
      await Promise.all(Array.from({ length: 100 }, (_, i) => ca.issue(`host-${i}.example`)));
    } finally {
      clearInterval(probe);
    }
    // node-forge RSA-2048 blocks ~150 ms per leaf; a generous bound that still catches that.
    assert.ok(maxLag < 50, `max event-loop lag ${maxLag.toFixed(1)} ms`);
  });
});
