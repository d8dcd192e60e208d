import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkSpec, msUntilFull, take, type BucketSpec, type BucketState } from '../../src/core/token-bucket.js';
import { LocalRateLimiter } from '../../src/proxy/rate-limit/local.js';
import { createRateLimiter, isPending } from '../../src/proxy/rate-limit/index.js';

describe('token bucket (pure)', () => {
  const spec: BucketSpec = { rate: 10, burst: 5 };

  it('allows a burst, then refuses', () => {
    let state: BucketState | undefined;
    for (let i = 0; i < 5; i++) {
      const r = take(state, spec, 1000);
      expect(r).toMatchObject({ allowed: true, retryAfterMs: 0 });
      state = r.state;
    }
    const r = take(state, spec, 1000);
    expect(r.allowed).toBe(false);
    expect(r.retryAfterMs).toBe(100); // 1 token at 10/s
    expect(r.state.tokens).toBe(0);
  });

  it('refills over time, never past burst', () => {
    let state: BucketState = { tokens: 0, at: 0 };
    expect(take(state, spec, 99).allowed).toBe(false);
    const r = take(state, spec, 100);
    expect(r.allowed).toBe(true);
    expect(r.state).toEqual({ tokens: 0, at: 100 });
    state = { tokens: 0, at: 0 };
    expect(take(state, spec, 1_000_000).state.tokens).toBe(4); // full (5) less 1
  });

  it('retryAfterMs is exact: refused 1 ms before, allowed at it', () => {
    const s3: BucketSpec = { rate: 3, burst: 3 };
    const empty: BucketState = { tokens: 0, at: 0 };
    const r = take(empty, s3, 0);
    expect(r.retryAfterMs).toBe(334); // 1/3 s, rounded up
    expect(take(empty, s3, 333).allowed).toBe(false);
    expect(take(empty, s3, 334).allowed).toBe(true);
    // Partially filled: 0.5 token, need 2 at 2/s → 750 ms.
    const r2 = take({ tokens: 0.5, at: 0 }, { rate: 2, burst: 4 }, 0, 2);
    expect(r2).toMatchObject({ allowed: false, retryAfterMs: 750 });
  });

  it('takes cost tokens', () => {
    const r = take(undefined, spec, 0, 3);
    expect(r).toMatchObject({ allowed: true, state: { tokens: 2 } });
    const r2 = take(r.state, spec, 0, 3);
    expect(r2).toMatchObject({ allowed: false, retryAfterMs: 100 });
    expect(take(r2.state, spec, 0, 0).allowed).toBe(true); // cost 0 is always allowed
  });

  it('refuses a cost above burst without taking anything; retry after a full refill', () => {
    const r = take(undefined, spec, 0, 6);
    expect(r).toMatchObject({ allowed: false, retryAfterMs: 500, state: { tokens: 5 } });
  });

  it('a clock going backwards refills nothing and does not move `at` back', () => {
    const r = take({ tokens: 1, at: 1000 }, spec, 500);
    expect(r.state).toEqual({ tokens: 0, at: 1000 });
  });

  it('rejects bad specs and costs', () => {
    expect(() => checkSpec({ rate: 0, burst: 1 })).toThrow(RangeError);
    expect(() => checkSpec({ rate: 1, burst: Infinity })).toThrow(RangeError);
    expect(() => checkSpec({ rate: NaN, burst: 1 })).toThrow(RangeError);
    expect(() => take(undefined, { rate: 1, burst: 1 }, 0, -1)).toThrow(RangeError);
  });

  it('msUntilFull', () => {
    expect(msUntilFull({ tokens: 5, at: 0 }, spec)).toBe(0);
    expect(msUntilFull({ tokens: 0, at: 0 }, spec)).toBe(500);
  });

  it('property: after a refusal, waiting retryAfterMs is enough', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.001, max: 1e6, noNaN: true }),
        fc.double({ min: 0.5, max: 1e4, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.integer({ min: 0, max: 2 ** 40 }),
        (rate, burst, fill, costFrac, now) => {
          const s = { rate, burst };
          const cost = costFrac * burst;
          const r = take({ tokens: fill * burst, at: now }, s, now, cost);
          if (r.allowed) return r.retryAfterMs === 0 && r.state.tokens >= 0;
          return r.retryAfterMs > 0 && take(r.state, s, now + r.retryAfterMs, cost).allowed;
        },
      ),
    );
  });
});

describe('LocalRateLimiter', () => {
  const spec: BucketSpec = { rate: 1, burst: 2 };

  it('answers synchronously (no Promise) and keeps keys apart', () => {
    let t = 0;
    const rl = new LocalRateLimiter({ now: () => t, sweepIntervalMs: 0 });
    const d = rl.take('a', spec);
    expect(d instanceof Promise).toBe(false);
    expect(isPending(d)).toBe(false);
    expect(rl.take('a', spec).allowed).toBe(true);
    expect(rl.take('a', spec)).toEqual({ allowed: false, retryAfterMs: 1000 });
    expect(rl.take('b', spec).allowed).toBe(true); // b has its own bucket
    t = 1000;
    expect(rl.take('a', spec).allowed).toBe(true);
    expect(rl.take('a', spec).allowed).toBe(false);
  });

  it('holds at most maxKeys buckets, dropping the least recently used', () => {
    const t = 0;
    const rl = new LocalRateLimiter({ maxKeys: 3, now: () => t, sweepIntervalMs: 0 });
    for (const k of ['a', 'b', 'c']) rl.take(k, spec);
    rl.take('a', spec); // a is now the most recently used; b the least
    rl.take('d', spec);
    expect(rl.size).toBe(3);
    // a was kept (one token left → second take refused), b was dropped (a fresh, full bucket).
    expect(rl.take('a', spec).allowed).toBe(false);
    for (let i = 0; i < 10_000; i++) rl.take(`k${i}`, spec);
    expect(rl.size).toBe(3);
  });

  it('does not keep full buckets; the sweep drops buckets that have refilled', () => {
    let t = 0;
    const rl = new LocalRateLimiter({ now: () => t, sweepIntervalMs: 0 });
    rl.take('x', spec, 0); // cost 0: nothing taken, nothing kept
    rl.take('y', spec, 5); // cost > burst: refused, nothing kept
    expect(rl.size).toBe(0);
    rl.take('a', spec); // full in 1 s
    rl.take('b', spec, 2); // full in 2 s
    t = 1000;
    expect(rl.sweep()).toBe(1);
    expect(rl.size).toBe(1);
    t = 2000;
    expect(rl.sweep()).toBe(1);
    expect(rl.size).toBe(0);
  });

  it('createRateLimiter without redis is local', async () => {
    const rl = createRateLimiter({ sweepIntervalMs: 0 });
    expect(rl).toBeInstanceOf(LocalRateLimiter);
    await rl.close();
  });
});
