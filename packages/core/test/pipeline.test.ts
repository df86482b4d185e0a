/** The pipeline's pieces: compose's order and guard, and the method policy's decisions. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { routeOf } from '../src/api/route.ts';
import type { RequestContext } from '../src/context.ts';
import { decide } from '../src/pipeline/method-policy.ts';
import { compose, type Step } from '../src/pipeline/step.ts';

const ctx = {} as RequestContext;

test('compose runs steps around the last one, in order', async () => {
  const seen: string[] = [];
  const step =
    (name: string): Step =>
    async (_ctx, next) => {
      seen.push(`${name}>`);
      await next();
      seen.push(`<${name}`);
    };
  await compose([step('a'), step('b')])(ctx, async () => {
    seen.push('handler');
  });
  assert.deepEqual(seen, ['a>', 'b>', 'handler', '<b', '<a']);
});

test('a step that does not call next answers alone; next twice rejects', async () => {
  let reached = false;
  await compose([async () => undefined])(ctx, async () => {
    reached = true;
  });
  assert.equal(reached, false);
  const twice: Step = async (_ctx, next) => {
    await next();
    await next();
  };
  await assert.rejects(
    compose([twice])(ctx, async () => undefined),
    /more than once/,
  );
  assert.throws(() => compose([42 as unknown as Step]), TypeError);
});

function decision(path: string, method: string, allowPush = false, token = false, query?: string) {
  return decide({ route: routeOf(path), method, query, allowPush, isTokenRequest: () => token });
}

test('method policy: reads go to their handler with injection; writes and other methods never inject', () => {
  const blob = `/v2/library/app/blobs/sha256:${'a'.repeat(64)}`;
  assert.deepEqual(decision(blob, 'GET'), { requestType: 'blob-by-digest', inject: true, handler: 'blob' });
  assert.deepEqual(decision(blob, 'HEAD', true), {
    requestType: 'blob-by-digest',
    inject: true,
    handler: 'passthrough',
  });
  assert.deepEqual(decision(blob, 'PUT'), { requestType: 'upload', inject: false, handler: 'push-disabled' });
  assert.deepEqual(decision(blob, 'PUT', true), { requestType: 'upload', inject: false, handler: 'push' });
  assert.deepEqual(decision('/v2/library/app/manifests/v1', 'OPTIONS'), {
    requestType: 'manifest-uncached',
    inject: false,
    handler: 'method-not-allowed',
  });
  assert.deepEqual(decision('/v2/', 'GET'), { requestType: 'ping', inject: true, handler: 'ping' });
  assert.deepEqual(decision('/v2/x/blobs/uploads/', 'GET'), {
    requestType: 'upload',
    inject: false,
    handler: 'passthrough',
  });
  assert.deepEqual(decision('/token', 'GET', false, true, 'scope=repository:a/b:pull'), {
    requestType: 'other',
    inject: true,
    handler: 'token',
  });
  assert.equal(decision('/token', 'GET', false, true, 'scope=repository:a/b:pull,push').inject, false);
  assert.equal(decision('/token', 'GET', false, false, 'scope=repository:a/b:pull').handler, 'passthrough');
});
