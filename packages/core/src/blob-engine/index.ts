/** The blob engine: single-flight, verified blob fills over a ContentStore (docs/blob-engine.md). */
export { BlobCursor, type CursorSource } from './cursor.js';
export { BlobEngine, type BlobEngineOptions, type BlobResult } from './engine.js';
export type { FillFetch, FillInfo, FillResume, FillSource, FillStats } from './types.js';
