/**
 * Everything a registry cache instance owns, created once by `createRegistryCache()` and
 * handed to each handler. No handler keeps state of its own outside this object.
 */
import type { CacheEvents } from './events.js';
import type { ResolvedOptions } from './options.js';
import type { UpstreamClient } from './upstream/client.js';
import type { Credentials } from './upstream/credentials.js';

export interface Services {
  readonly options: ResolvedOptions;
  readonly upstream: UpstreamClient;
  readonly credentials: Credentials;
  readonly events: CacheEvents;
}
