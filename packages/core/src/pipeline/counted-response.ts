/**
 * The response handlers and steps write through: a view of the real ServerResponse that counts
 * body bytes for the access log (`bytes`). The real response is never modified; the view
 * forwards everything else to it (methods bound to it, so streams piping into the view behave
 * as if piping into the response).
 */
import type { ServerResponse } from 'node:http';

export interface CountedResponse {
  readonly res: ServerResponse;
  /** Body bytes written so far (headers and transfer framing not included). */
  bytes(): number;
}

function sizeOf(chunk: unknown): number {
  if (typeof chunk === 'string') return Buffer.byteLength(chunk);
  return chunk instanceof Uint8Array ? chunk.byteLength : 0;
}

export function countedResponse(target: ServerResponse): CountedResponse {
  let total = 0;
  const bound = new Map<PropertyKey, unknown>();
  const write = (chunk: unknown, ...rest: unknown[]) => {
    total += sizeOf(chunk);
    return (target.write as (c: unknown, ...r: unknown[]) => boolean)(chunk, ...rest);
  };
  const end = (chunk?: unknown, ...rest: unknown[]) => {
    if (typeof chunk !== 'function') total += sizeOf(chunk);
    (target.end as (c?: unknown, ...r: unknown[]) => ServerResponse)(chunk, ...rest);
    return view;
  };
  const view: ServerResponse = new Proxy(target, {
    get(res, key) {
      if (key === 'write') return write;
      if (key === 'end') return end;
      const value: unknown = Reflect.get(res, key, res);
      if (typeof value !== 'function') return value;
      let fn = bound.get(key);
      if (!fn) {
        // Chained calls (`writeHead(...).end()`) must come back to the view, not the response.
        fn = (...args: unknown[]) => {
          const out: unknown = (value as (...a: unknown[]) => unknown).apply(res, args);
          return out === res ? view : out;
        };
        bound.set(key, fn);
      }
      return fn;
    },
    set(res, key, value) {
      return Reflect.set(res, key, value, res);
    },
  });
  return { res: view, bytes: () => total };
}
