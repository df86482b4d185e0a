/**
 * Everything a registry cache instance owns, created once by `createRegistryCache()` and
 * handed to each handler. No handler keeps state of its own outside this object.
 */
import type { BlobEngine } from './blob-engine/index.js';
import type { CacheEvents } from './events.js';
import type { ManifestServices } from './middleware/manifests.js';
import type { ResolvedOptions } from './options.js';
import type { AccessGrants } from './store/access-grants.js';
import type { ContentStore } from './store/content-store.js';
import type { UpstreamClient } from './upstream/client.js';
import type { Credentials } from './upstream/credentials.js';

export interface Services {
  readonly options: ResolvedOptions;
  readonly upstream: UpstreamClient;
  readonly credentials: Credentials;
  readonly events: CacheEvents;
  /** The content-addressed store (blobs and manifests by digest), with LRU and size cap. */
  readonly blobs: ContentStore;
  /** Single-flight fills of uncached blobs over the store, owned by this cache instance. */
  readonly engine: BlobEngine;
  /** Recent proofs that a client may read a blob (`verifyBlobAccess`). */
  readonly blobAccess: AccessGrants;
  /** Tag index, tiers, auth classes, ping memory and manifest fetches in flight. */
  readonly manifests: ManifestServices;
}
