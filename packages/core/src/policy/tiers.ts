/**
 * The original's tag-manifest tiers: a tag matching the primary regex is cached for the primary
 * time, else one matching the secondary regex for the secondary time, else the default time.
 * Each regex is the original's fragment anchored at the start of the tag only (nginx `~` on
 * `/manifests/<fragment>`), so `(stable|...|test)` matches `stable-alpine` and `testing`.
 */
import type { RequestType } from '../events.js';
import type { ResolvedManifestCache } from '../options.js';

export type TierName = 'primary' | 'secondary' | 'default';

export interface TierDecision {
  readonly tier: TierName;
  /** How long a tag of this tier is served from the cache without asking upstream. */
  readonly ttlMs: number;
  /** The access log's `request_type` for this tier. */
  readonly requestType: Extract<RequestType, 'manifest-primary' | 'manifest-secondary' | 'manifest-default'>;
  /** Why: which regex matched (or that none did). */
  explain(): string;
}

function formatMs(ms: number): string {
  const units: [string, number][] = [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ];
  for (const [unit, size] of units) if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

export class TagTiers {
  readonly #config: ResolvedManifestCache;

  constructor(config: ResolvedManifestCache) {
    this.#config = config;
  }

  /** Whether tag manifests are cached at all (`ENABLE_MANIFEST_CACHE`). */
  get enabled(): boolean {
    return this.#config.enabled;
  }

  classify(tag: string): TierDecision {
    const { primary, secondary, defaultTtlMs } = this.#config;
    if (primary.regex.test(tag)) {
      return decision('primary', primary.ttlMs, () => `tag ${tag} matches primary regex ^${primary.source}`);
    }
    if (secondary.regex.test(tag)) {
      return decision(
        'secondary',
        secondary.ttlMs,
        () => `tag ${tag} matches secondary regex ^${secondary.source} (not primary)`,
      );
    }
    return decision('default', defaultTtlMs, () => `tag ${tag} matches neither primary nor secondary regex`);
  }

  /** The whole policy in one paragraph, for `--help`-style diagnostics and logs at start. */
  explain(): string {
    const { enabled, primary, secondary, defaultTtlMs } = this.#config;
    const tiers =
      `primary ^${primary.source} for ${formatMs(primary.ttlMs)}, ` +
      `then secondary ^${secondary.source} for ${formatMs(secondary.ttlMs)}, ` +
      `else default for ${formatMs(defaultTtlMs)}`;
    return enabled
      ? `tag manifests cached by tier: ${tiers}; expired tags are revalidated with HEAD`
      : `tag manifests always asked upstream (manifest cache disabled; last answer kept for stale-on-error); tiers would be: ${tiers}`;
  }
}

function decision(tier: TierName, ttlMs: number, explain: () => string): TierDecision {
  return { tier, ttlMs, requestType: `manifest-${tier}`, explain: () => `${explain()}: ${formatMs(ttlMs)}` };
}
