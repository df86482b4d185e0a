/**
 * One handler of each kind for a cache instance, each built by its factory from only what it
 * uses; `overrides` (createRegistryCache's `handlers` option) replace the blob or manifest one.
 */

import type { BlobEngine } from '../blob-engine/index.js';
import type { CacheEvents } from '../events.js';
import { createBlobAccess } from '../middleware/blob-access.js';
import { createBlobHandler } from '../middleware/blobs.js';
import { createManifestHandler } from '../middleware/manifests/index.js';
import { createPassthroughHandler } from '../middleware/passthrough.js';
import { createPingHandler } from '../middleware/ping.js';
import { PingMemory } from '../middleware/ping-memory.js';
import { createPushHandler } from '../middleware/push.js';
import { createTokenHandler } from '../middleware/token.js';
import type { ResolvedOptions } from '../options.js';
import type { AuthClassifier } from '../policy/auth-class.js';
import { TagTiers } from '../policy/tiers.js';
import { AccessGrants } from '../store/access-grants.js';
import type { ContentStore } from '../store/content-store.js';
import { ManifestStore } from '../store/manifest-store.js';
import type { TagIndex } from '../store/tag-index.js';
import type { UpstreamClient } from '../upstream/client.js';
import type { Credentials } from '../upstream/credentials.js';
import type { HandlerName } from './routes.js';
import type { Handler } from './step.js';

export interface HandlerParts {
  readonly options: ResolvedOptions;
  readonly upstream: UpstreamClient;
  readonly credentials: Credentials;
  readonly events: CacheEvents;
  readonly auth: AuthClassifier;
  readonly blobStore: ContentStore;
  readonly engine: BlobEngine;
  readonly tags: TagIndex;
}

export interface HandlerOverrides {
  readonly blob?: Handler;
  readonly manifest?: Handler;
}

export function buildHandlers(
  p: HandlerParts,
  overrides: HandlerOverrides = {},
): Record<HandlerName, Handler> {
  const { upstream, credentials, events, auth, options } = p;
  const { staleTimeoutMs } = options.upstream;
  const passthrough = createPassthroughHandler({ upstream, credentials });
  return {
    blob:
      overrides.blob ??
      createBlobHandler({
        engine: p.engine,
        upstream,
        credentials,
        auth,
        access: createBlobAccess({
          mode: options.verifyBlobAccess,
          grants: new AccessGrants(60_000, options.now),
          upstream,
        }),
        events,
        passthrough,
      }),
    manifest:
      overrides.manifest ??
      createManifestHandler({
        upstream,
        credentials,
        events,
        auth,
        store: new ManifestStore(p.blobStore),
        tags: p.tags,
        tiers: new TagTiers(options.manifestCache),
        verifyBlobAccess: options.verifyBlobAccess,
        staleTimeoutMs,
        now: options.now,
        flights: new Map(),
      }),
    ping: createPingHandler({
      upstream,
      credentials,
      auth,
      events,
      staleTimeoutMs,
      now: options.now,
      pings: new PingMemory(options.cacheDir),
    }),
    token: createTokenHandler({ upstream, credentials, auth }),
    push: createPushHandler({ upstream, tags: p.tags }),
    passthrough,
  };
}
