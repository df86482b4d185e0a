/** What the manifest handler uses, handed to its factory once per cache instance. */
import type { CacheEvents } from '../../events.js';
import type { AuthClassifier } from '../../policy/auth-class.js';
import type { TagTiers } from '../../policy/tiers.js';
import type { AccessCheckMode } from '../../store/content-kind.js';
import type { ManifestStore } from '../../store/manifest-store.js';
import type { TagIndex } from '../../store/tag-index.js';
import type { UpstreamClient } from '../../upstream/client.js';
import type { Credentials } from '../../upstream/credentials.js';
import type { Fetched } from '../upstream-answer.js';

export interface ManifestDeps {
  readonly upstream: UpstreamClient;
  readonly credentials: Credentials;
  readonly events: CacheEvents;
  /** Manifests by digest, in the content store. */
  readonly store: ManifestStore;
  /** (registry, repository, tag, Accept, auth class) -> digest. */
  readonly tags: TagIndex;
  readonly tiers: TagTiers;
  readonly auth: Pick<AuthClassifier, 'classifyRequest' | 'noteChallenge'>;
  readonly verifyBlobAccess: AccessCheckMode;
  /** How long upstream may take when a stale answer is at hand. */
  readonly staleTimeoutMs: number;
  readonly now: () => number;
  /** Upstream GETs in flight, so identical concurrent requests share one. */
  readonly flights: Map<string, Promise<Fetched>>;
}
