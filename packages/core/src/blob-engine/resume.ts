/**
 * How an upstream answer starts a fill: a `200` is the whole blob; when the fill resumes a dead
 * leader's bytes (a takeover asked with `Range: bytes=N-`), a `206` must say exactly
 * `bytes N-(total-1)/total`. A `200` to a resumed request restarts from 0: the first N bytes
 * (already written) are skipped. Anything else is not the blob.
 */
import type { FillSource } from './types.js';

export interface BodyStart {
  /** Offset of the body's first byte in the blob. */
  readonly received: number;
  /** Leading body bytes the writer already holds. */
  readonly skip: number;
  readonly size: number | undefined;
}

export function bodyStart(response: FillSource, resumeFrom: number): BodyStart | undefined {
  const length = decimal(response.headers['content-length']);
  if (response.status === 200) return { received: 0, skip: resumeFrom, size: length };
  if (resumeFrom <= 0 || response.status !== 206) return undefined;
  const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(response.headers['content-range'] ?? '');
  if (!range) return undefined;
  const [first, last, total] = [Number(range[1]), Number(range[2]), Number(range[3])];
  if (first !== resumeFrom || last !== total - 1 || !Number.isSafeInteger(total)) return undefined;
  if (length !== undefined && length !== total - first) return undefined;
  return { received: first, skip: 0, size: total };
}

function decimal(value: string | undefined): number | undefined {
  return value !== undefined && /^\d{1,15}$/.test(value) ? Number(value) : undefined;
}
