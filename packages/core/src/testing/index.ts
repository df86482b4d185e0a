/** `@drp/core/testing`: test helpers for library users (node:test based). */
export { contentStoreConformance, type MakeContentStore } from './content-store-conformance.js';
export { type MakeSharedStores, multiProcessConformance } from './multi-process-conformance.js';
