// PROXY_AUTH checks: bcrypt runs once per distinct credential (then remembered), never for a
// repeated identical header, always for a new guess; a flood of guesses is bounded.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import bcrypt from 'bcryptjs';
import { createCredentialCheck, parseBasic } from '../src/front/proxy-auth.ts';

const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('proxy credentials', () => {
  const hash = bcrypt.hashSync('right', 4);
  const counted = () => {
    let calls = 0;
    return {
      calls: () => calls,
      compare: (password: string, h: string) => {
        calls += 1;
        return bcrypt.compare(password, h);
      },
    };
  };

  it('parses Basic credentials, passwords with colons, and nothing else', () => {
    assert.deepEqual(parseBasic(basic('u', 'a:b')), { username: 'u', password: 'a:b' });
    assert.equal(parseBasic('Bearer x'), undefined);
    assert.equal(parseBasic(`Basic ${Buffer.from('nocolon').toString('base64')}`), undefined);
    assert.equal(parseBasic(undefined), undefined);
  });

  it('a verified header costs one bcrypt check, however often it is sent', async () => {
    const c = counted();
    const check = createCredentialCheck([{ username: 'alice', bcryptHash: hash }], c.compare);
    for (let i = 0; i < 50; i++) assert.equal(await check.verify(basic('alice', 'right')), true);
    assert.equal(c.calls(), 1);
  });

  it('every new guess pays a bcrypt check; a repeated wrong header does not', async () => {
    const c = counted();
    const check = createCredentialCheck([{ username: 'alice', bcryptHash: hash }], c.compare);
    for (let i = 0; i < 5; i++) assert.equal(await check.verify(basic('alice', `guess${i}`)), false);
    assert.equal(c.calls(), 5);
    for (let i = 0; i < 20; i++) assert.equal(await check.verify(basic('alice', 'guess0')), false);
    assert.equal(c.calls(), 5);
    // An unknown user costs a check too (no user enumeration by timing), and is refused.
    assert.equal(await check.verify(basic('mallory', 'right')), false);
    assert.equal(c.calls(), 6);
    assert.equal(await check.verify(basic('alice', 'right')), true);
  });

  it('plain PROXY_AUTH needs no bcrypt', async () => {
    const c = counted();
    const check = createCredentialCheck([{ username: 'bob', password: 'pw' }], c.compare);
    assert.equal(await check.verify(basic('bob', 'pw')), true);
    assert.equal(await check.verify(basic('bob', 'pw2')), false);
    assert.equal(await check.verify(basic('bo', 'pw')), false);
    assert.equal(c.calls(), 0);
  });

  it('a flood of distinct guesses is bounded: at most two run at once, the excess is refused', async () => {
    let running = 0;
    let most = 0;
    let calls = 0;
    const check = createCredentialCheck([{ username: 'alice', bcryptHash: hash }], async () => {
      calls += 1;
      running += 1;
      most = Math.max(most, running);
      await new Promise((r) => setTimeout(r, 5));
      running -= 1;
      return false;
    });
    const results = await Promise.all(
      Array.from({ length: 400 }, (_, i) => check.verify(basic('alice', `flood${i}`))),
    );
    assert.ok(results.every((r) => r === false));
    assert.equal(most, 2);
    assert.ok(calls < 400, `${calls} checks ran for 400 guesses`);
  });
});
