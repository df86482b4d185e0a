/**
 * TEMPORARY: the bag middleware/blobs.ts still takes, built only for the blob adapter in
 * pipeline/handlers.ts. Every other handler is built by a factory from only what it uses; this
 * file goes away when core-engine's `createBlobHandler(deps)` lands.
 */
import type { CacheEvents } from './events.js';
import type { FlightTable } from './flight.js';
import type { ResolvedOptions } from './options.js';
import type { AuthClassifier } from './policy/auth-class.js';
import type { AccessGrants } from './store/access-grants.js';
import type { BlobStore } from './store/blob-store.js';
import type { UpstreamClient } from './upstream/client.js';
import type { Credentials } from './upstream/credentials.js';

export interface Services {
  readonly options: ResolvedOptions;
  readonly upstream: UpstreamClient;
  readonly credentials: Credentials;
  readonly events: CacheEvents;
  readonly blobs: BlobStore;
  readonly flights: FlightTable;
  readonly blobAccess: AccessGrants;
  readonly manifests: { readonly auth: AuthClassifier };
}
