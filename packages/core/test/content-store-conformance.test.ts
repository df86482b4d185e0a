/**
 * The ContentStore conformance suite (exported as `@drp/core/testing`) against the default
 * store (cacache layout on disk) and against a small in-memory store written for the tests.
 */
import { BlobStore } from '../src/store/blob-store.ts';
import { contentStoreConformance, multiProcessConformance } from '../src/testing/index.ts';
import { tempDir } from './blob-helpers.ts';
import { MemoryStore } from './memory-store.ts';

contentStoreConformance('BlobStore (default, on disk)', (t) =>
  BlobStore.open({ dir: tempDir(t, 'drp-conformance-'), maxSizeBytes: 1 << 30, inactiveMs: 0 }),
);

contentStoreConformance('MemoryStore (test double)', async () => new MemoryStore());

// Several BlobStores on one directory, as separate processes would open it (each its own table).
multiProcessConformance('BlobStore (one directory, several processes)', (t, count) => {
  const dir = tempDir(t, 'drp-shared-');
  const open = () => BlobStore.open({ dir, maxSizeBytes: 1 << 30, inactiveMs: 0 });
  return Promise.all(Array.from({ length: count }, open));
});
