/**
 * @drp/core: registry cache middleware on plain Node http request/response objects.
 *
 *   const cache = await createRegistryCache({ cacheDir: '/var/cache/drp', use: [auditStep] });
 *   server.on('request', (req, res) => cache.handle(req, res, { host: 'ghcr.io', port: 443 }));
 *
 * Everything exported here is the semver-stable public API (docs/library.md); internal classes
 * (the flight table, the blob store class, the tag tiers) are not.
 */
export {
  DrpError,
  type DrpErrorCode,
  ERROR_CODES,
  isDrpError,
  type OciErrorCode,
  ociErrorBody,
} from './api/errors.js';
export { CACHE_STATUS_HEADER, CACHE_TYPE_HEADER, sendError } from './api/respond.js';
export { isValidName, isValidTag, parseDigest, parseRoute, type Route, type RouteKind } from './api/route.js';
export { type AuthRegistriesDelimiters, parseAuthRegistries } from './auth-registries.js';
export {
  BlobCursor,
  BlobEngine,
  type BlobEngineOptions,
  type BlobResult,
  type FillFetch,
  type FillInfo,
  type FillSource,
  type FillStats,
} from './blob-engine/index.js';
export {
  type CacheStats,
  type CacheStore,
  type CreateRegistryCacheOptions,
  createRegistryCache,
  type RegistryCache,
  type TargetResolver,
} from './cache.js';
export type { OutcomeDraft, RequestContext } from './context.js';
export {
  type BlobEvent,
  type CacheEventMap,
  type CacheEventName,
  CacheEvents,
  type CacheStatus,
  CHANNEL_PREFIX,
  type RequestOutcome,
  type RequestType,
  type UpstreamEvent,
} from './events.js';
export { STALE_HEADER } from './middleware/stale.js';
export { type CidrList, createCidrList, parseCidr, plainAddress, splitList } from './net/cidr.js';
export {
  type ConnectPlan,
  createDestinationGuard,
  DESTINATION_BLOCKED,
  type DestinationGuard,
  type DestinationGuardOptions,
  destinationRefused,
} from './net/destination-guard.js';
export {
  DEFAULTS,
  type DurationOption,
  type ManifestCacheOptions,
  type RegistryCacheOptions,
  type RegistryCredential,
  type ResolvedOptions,
  resolveOptions,
  type SizeOption,
  type UpstreamOptions,
} from './options.js';
export { compose, type Handler, type Next, type Step } from './pipeline/step.js';
// The default ContentStore (cacache layout, LRU, size cap): usable alone, e.g. under BlobEngine.
export {
  BlobStore,
  type BlobStoreOptions,
  type BlobStoreStats,
  type ScrubResult,
} from './store/blob-store.js';
export type { AccessCheckMode } from './store/content-kind.js';
export type {
  ClaimContext,
  ContentHandle,
  ContentInfo,
  ContentMeta,
  ContentStore,
  ContentStoreStats,
  ContentWriter,
  FillClaim,
  FillLease,
  ReadAt,
  RemoteFill,
  RemoteState,
  WriteContext,
} from './store/content-store.js';
export {
  listStoredEntries,
  listTagEntries,
  removeStoredEntries,
  type StoredEntry,
  verifyStoredEntry,
} from './store/offline.js';
export type { TagEntry } from './store/tag-index.js';
export { parseDuration, parseSize } from './units.js';
export { endToEndHeaders } from './upstream/headers.js';
export * from './upstream/mappings.js';
export {
  type NoProxy,
  parseNoProxy,
  parseUpstreamProxy,
  type UpstreamProxy,
} from './upstream/proxy.js';
export { parseHostPort, targetKey, type UpstreamTarget } from './upstream/target.js';
