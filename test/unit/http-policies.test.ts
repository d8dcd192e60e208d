import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { consistentHash, hash32 } from '../../src/core/policies/consistent-hash.js';
import { leastConnections } from '../../src/core/policies/least-connections.js';
import { hasRoom, type Candidate, type PickContext, type Picker } from '../../src/core/policies/picker.js';
import { roundRobin } from '../../src/core/policies/round-robin.js';
import {
  cookieValueFor,
  NOCACHE_HEADER,
  readStickyCookie,
  serverIdFromCookie,
  stickySetCookie,
  stripStickyCookie,
} from '../../src/core/policies/sticky-cookie.js';
import { twoRandomChoices } from '../../src/core/policies/two-random-choices.js';
import { weightedRoundRobin } from '../../src/core/policies/weighted-round-robin.js';

function seeded(seed: number): () => number {
  let x = (Math.abs(seed) % 2147483646) + 1;
  return () => (x = (x * 48271) % 2147483647) / 2147483647;
}

function backend(id: string, weight = 100, inflight = 0, maxconn = 0): Candidate {
  return { id, weight, inflight, maxconn };
}

function backends(n: number, weight = 100): Candidate[] {
  return Array.from({ length: n }, (_, i) => backend(`b${i}`, weight));
}

/** Picks `times` times, counting choices by id. */
function tally(picker: Picker, cs: readonly Candidate[], times: number, ctx: Partial<PickContext> = {}, hold = false): Map<string, number> {
  const random = ctx.random ?? seeded(7);
  const counts = new Map<string, number>();
  for (let i = 0; i < times; i++) {
    const c = picker.pick(cs, { random, ...ctx });
    if (!c) continue;
    if (hold) c.inflight++;
    counts.set(c.id, (counts.get(c.id) ?? 0) + 1);
  }
  return counts;
}

const factories: Record<string, () => Picker> = {
  'round-robin': roundRobin,
  'weighted-round-robin': weightedRoundRobin,
  'least-connections': leastConnections,
  'two-random-choices': twoRandomChoices,
  'consistent-hash (no key)': () => consistentHash(),
};

describe('hasRoom', () => {
  it('needs a positive weight and, with a maxconn, room under it', () => {
    expect(hasRoom(backend('a'))).toBe(true);
    expect(hasRoom(backend('a', 0))).toBe(false);
    expect(hasRoom(backend('a', 1, 2, 3))).toBe(true);
    expect(hasRoom(backend('a', 1, 3, 3))).toBe(false);
    expect(hasRoom(backend('a', 1, 1000, 0))).toBe(true);
  });
});

describe('every picker', () => {
  for (const [name, make] of Object.entries(factories)) {
    describe(name, () => {
      it('returns undefined when no backend has room', () => {
        const p = make();
        const r = seeded(1);
        expect(p.pick([], { random: r })).toBeUndefined();
        expect(p.pick([backend('a', 100, 2, 2), backend('b', 0), backend('c', 100, 5, 5)], { random: r })).toBeUndefined();
        expect(p.pick([backend('a'), backend('b')], { random: r, exclude: new Set(['a', 'b']) })).toBeUndefined();
      });

      it('never picks a full, weight-0 or excluded backend', () => {
        fc.assert(
          fc.property(
            fc.array(fc.record({ weight: fc.constantFrom(0, 1, 50, 100), inflight: fc.nat(5), maxconn: fc.nat(5) }), { minLength: 1, maxLength: 8 }),
            fc.array(fc.nat(7), { maxLength: 3 }),
            fc.option(fc.string(), { nil: undefined }),
            fc.integer(),
            (specs, ex, key, seed) => {
              const cs = specs.map((s, i) => backend(`b${i}`, s.weight, s.inflight, s.maxconn));
              const exclude = new Set(ex.map((i) => `b${i}`));
              const p = make();
              const random = seeded(seed);
              const open = cs.filter((c) => hasRoom(c) && !exclude.has(c.id));
              for (let k = 0; k < 10; k++) {
                const c = p.pick(cs, { random, exclude, key });
                if (open.length === 0) expect(c).toBeUndefined();
                else {
                  expect(c).toBeDefined();
                  expect(open).toContain(c);
                }
              }
            },
          ),
        );
      });

      it('respects maxconn as requests are held', () => {
        const cs = [backend('a', 100, 0, 2), backend('b', 100, 0, 3), backend('c', 100, 0, 1)];
        const counts = tally(make(), cs, 10, {}, true);
        expect(Object.fromEntries(counts)).toEqual({ a: 2, b: 3, c: 1 });
        expect(cs.every((c) => c.inflight <= c.maxconn)).toBe(true);
      });
    });
  }
});

describe('round-robin', () => {
  it('gives 3 backends exactly 100 each of 300 picks, in rotation', () => {
    const p = roundRobin();
    const cs = backends(3);
    const r = seeded(1);
    expect([0, 1, 2, 3].map(() => p.pick(cs, { random: r })?.id)).toEqual(['b0', 'b1', 'b2', 'b0']);
    const fresh = tally(roundRobin(), cs, 300);
    expect(Object.fromEntries(fresh)).toEqual({ b0: 100, b1: 100, b2: 100 });
  });

  it('ignores weights other than 0', () => {
    const cs = [backend('a', 500), backend('b', 1), backend('c', 0)];
    expect(Object.fromEntries(tally(roundRobin(), cs, 100))).toEqual({ a: 50, b: 50 });
  });

  it('skips an excluded backend and stays fair among the rest', () => {
    const cs = backends(4);
    const counts = tally(roundRobin(), cs, 300, { exclude: new Set(['b2']) });
    expect(Object.fromEntries(counts)).toEqual({ b0: 100, b1: 100, b3: 100 });
  });
});

describe('weighted-round-robin (nginx smooth)', () => {
  it("gives nginx's sequence for weights {5,1,1}", () => {
    const p = weightedRoundRobin();
    const cs = [backend('a', 5), backend('b', 1), backend('c', 1)];
    const r = seeded(1);
    const seq = Array.from({ length: 14 }, () => p.pick(cs, { random: r })?.id).join('');
    expect(seq).toBe('aabacaa'.repeat(2));
  });

  it('shares picks in proportion to weight', () => {
    const cs = [backend('a', 100), backend('b', 50), backend('c', 25), backend('d', 0)];
    expect(Object.fromEntries(tally(weightedRoundRobin(), cs, 700))).toEqual({ a: 400, b: 200, c: 100 });
  });

  it('keeps current weights per id when the array changes', () => {
    const p = weightedRoundRobin();
    const r = seeded(1);
    const one = [backend('a', 5), backend('b', 1), backend('c', 1)];
    expect(p.pick(one, { random: r })?.id).toBe('a'); // a -2, b 1, c 1
    // Same backends in a new array and order: a (3 - 7 = -4, b 2, c 2), then c (first of c 3, b 3).
    // Starting over at the new array would give a, a.
    const two = [one[2]!, one[1]!, one[0]!];
    expect([p.pick(two, { random: r })?.id, p.pick(two, { random: r })?.id]).toEqual(['a', 'c']);
  });

  it('forgets the current weight of an id that left', () => {
    const p = weightedRoundRobin();
    const r = seeded(1);
    const a = backend('a', 1);
    p.pick([backend('c', 1), a], { random: r }); // c chosen: c -1, a 1
    expect(p.pick([a], { random: r })?.id).toBe('a'); // c gone: forgotten
    const back = [a, backend('c', 1)];
    // Forgotten, c starts at 0: a (a 0, c 1), then c. A stale -1 would give a, a.
    expect([p.pick(back, { random: r })?.id, p.pick(back, { random: r })?.id]).toEqual(['a', 'c']);
  });
});

describe('least-connections', () => {
  it('prefers the lowest inflight / weight', () => {
    const p = leastConnections();
    const r = seeded(1);
    // loads: a 10/100, b 3/10, c 5/100 → c
    expect(p.pick([backend('a', 100, 10), backend('b', 10, 3), backend('c', 100, 5)], { random: r })?.id).toBe('c');
    // a 4/200 = 0.02 beats b 1/10 = 0.1 despite more requests
    expect(p.pick([backend('a', 200, 4), backend('b', 10, 1)], { random: r })?.id).toBe('a');
  });

  it('spreads among equals instead of always taking the first', () => {
    const cs = backends(4);
    expect(Object.fromEntries(tally(leastConnections(), cs, 400))).toEqual({ b0: 100, b1: 100, b2: 100, b3: 100 });
  });

  it('keeps held requests proportional to weight', () => {
    const cs = [backend('a', 300), backend('b', 100)];
    tally(leastConnections(), cs, 400, {}, true);
    expect(cs[0]!.inflight).toBe(300);
    expect(cs[1]!.inflight).toBe(100);
  });
});

describe('two-random-choices', () => {
  it('with two backends always takes the less loaded one', () => {
    const cs = [backend('a', 100, 10), backend('b', 100, 0)];
    expect(Object.fromEntries(tally(twoRandomChoices(), cs, 200))).toEqual({ b: 200 });
  });

  it('never picks the most loaded backend, and one backend is always it', () => {
    const cs = [backend('a', 100, 50), backend('b', 100, 1), backend('c', 100, 2), backend('d', 100, 3)];
    const counts = tally(twoRandomChoices(), cs, 3000);
    expect(counts.get('a')).toBeUndefined();
    expect(counts.get('b')! > counts.get('c')! && counts.get('c')! > counts.get('d')!).toBe(true);
    expect(twoRandomChoices().pick([backend('x', 1, 99)], { random: seeded(3) })?.id).toBe('x');
  });

  it('keeps held load close to even', () => {
    const cs = backends(10);
    tally(twoRandomChoices(), cs, 10_000, { random: seeded(42) }, true);
    const loads = cs.map((c) => c.inflight);
    expect(Math.max(...loads) - Math.min(...loads)).toBeLessThanOrEqual(6);
  });
});

describe('consistent-hash', () => {
  const idle = (ids: string[]) => ids.map((id) => backend(id));

  it('sends a key to the same backend every time', () => {
    const p = consistentHash();
    const cs = backends(5);
    const r = seeded(1);
    for (const key of ['user-1', 'user-2', 'x', '']) {
      const first = p.pick(cs, { random: r, key });
      for (let i = 0; i < 5; i++) expect(p.pick(cs, { random: r, key })).toBe(first);
    }
  });

  it('moves a key only to an added backend (zero load)', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.string({ minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 8 }), fc.string({ minLength: 1 }), fc.array(fc.string(), { minLength: 1, maxLength: 30 }), (ids, added, keys) => {
        fc.pre(!ids.includes(added));
        const before = idle(ids);
        const after = [...idle(ids), backend(added)];
        const p = consistentHash();
        const q = consistentHash();
        const r = seeded(1);
        for (const key of keys) {
          const a = p.pick(before, { random: r, key })!.id;
          const b = q.pick(after, { random: r, key })!.id;
          if (a !== b) expect(b).toBe(added);
        }
      }),
    );
  });

  it('moves about 1/(N+1) of keys when one backend is added, and does not depend on array order', () => {
    const ids = Array.from({ length: 9 }, (_, i) => `10.0.0.${i + 1}:8080`);
    const before = idle(ids);
    const after = [backend('10.0.0.10:8080'), ...idle(ids).reverse()];
    const p = consistentHash();
    const q = consistentHash();
    const r = seeded(1);
    let moved = 0;
    const keys = 20_000;
    const share = new Map<string, number>();
    for (let i = 0; i < keys; i++) {
      const key = `session-${i}`;
      const a = p.pick(before, { random: r, key })!.id;
      const b = q.pick(after, { random: r, key })!.id;
      share.set(a, (share.get(a) ?? 0) + 1);
      if (a !== b) moved++;
    }
    expect(moved / keys).toBeGreaterThan(0.06);
    expect(moved / keys).toBeLessThan(0.15);
    // 100 points each keep every backend's share within ±40% of fair.
    for (const n of share.values()) expect(Math.abs(n - keys / 9)).toBeLessThan((keys / 9) * 0.4);
  });

  it('gives a heavier backend more keys', () => {
    const cs = [backend('a', 200), backend('b', 100), backend('c', 100)];
    const p = consistentHash();
    const r = seeded(1);
    const counts = new Map<string, number>();
    for (let i = 0; i < 20_000; i++) {
      const id = p.pick(cs, { random: r, key: `k${i}` })!.id;
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    expect(counts.get('a')! / 20_000).toBeGreaterThan(0.4);
    expect(counts.get('a')! / 20_000).toBeLessThan(0.6);
  });

  it('bounds the load a hot key puts on any backend', () => {
    for (const n of [2, 3, 5, 8]) {
      const cs = backends(n);
      const p = consistentHash({ loadFactor: 1.25 });
      const r = seeded(n);
      let total = 0;
      const home = p.pick(cs, { random: r, key: 'hot' })!;
      for (let i = 0; i < 500; i++) {
        const bound = Math.ceil((1.25 * (total + 1)) / n);
        const c = p.pick(cs, { random: r, key: 'hot' })!;
        c.inflight++;
        total++;
        expect(c.inflight).toBeLessThanOrEqual(bound);
      }
      expect(home.inflight).toBe(Math.max(...cs.map((c) => c.inflight))); // still the key's favourite
    }
  });

  it('counts the request being placed in the bound (+1)', () => {
    // Two backends: bounds ceil(1.25 × 1 / 2) = 1, then ceil(1.25 × 2 / 2) = 2, then ceil(1.875) = 2.
    const cs = backends(2);
    const p = consistentHash();
    const r = seeded(1);
    const seq = [0, 1, 2].map(() => {
      const c = p.pick(cs, { random: r, key: 'hot' })!;
      c.inflight++;
      return c;
    });
    expect(seq[1]).toBe(seq[0]);
    expect(seq[2]).not.toBe(seq[0]);
  });

  it('takes the next backend on the ring when the home one is excluded or full', () => {
    const cs = backends(5);
    const p = consistentHash();
    const r = seeded(1);
    const home = p.pick(cs, { random: r, key: 'k' })!;
    const next = p.pick(cs, { random: r, key: 'k', exclude: new Set([home.id]) })!;
    expect(next.id).not.toBe(home.id);
    home.maxconn = 1;
    home.inflight = 1;
    expect(p.pick(cs, { random: r, key: 'k' })).toBe(next);
  });

  it('hashes to 32 bits, deterministically', () => {
    expect(hash32('abc')).toBe(hash32('abc'));
    expect(hash32('abc')).not.toBe(hash32('abd'));
    fc.assert(fc.property(fc.string(), (s) => Number.isInteger(hash32(s)) && hash32(s) >= 0 && hash32(s) < 2 ** 32));
  });
});

describe('sticky cookie', () => {
  it('reads the cookie, trimmed and unquoted', () => {
    expect(readStickyCookie('a=1; SB=srv1; b=2', 'SB')).toBe('srv1');
    expect(readStickyCookie('SB="srv%201"', 'SB')).toBe('srv%201');
    expect(readStickyCookie('  SB = x ;', 'SB')).toBe('x');
    expect(readStickyCookie('XSB=1; SBX=2', 'SB')).toBeUndefined();
    expect(readStickyCookie(undefined, 'SB')).toBeUndefined();
    expect(readStickyCookie('', 'SB')).toBeUndefined();
    expect(readStickyCookie('SB', 'SB')).toBeUndefined();
  });

  it('strips it for the backend (indirect)', () => {
    expect(stripStickyCookie('a=1; SB=srv1; b=2', 'SB')).toBe('a=1; b=2');
    expect(stripStickyCookie('SB=srv1', 'SB')).toBeUndefined();
    expect(stripStickyCookie('SB=1;SB=2; ', 'SB')).toBeUndefined();
    expect(stripStickyCookie('a=1;;b', 'SB')).toBe('a=1; b');
    expect(stripStickyCookie('XSB=1', 'SB')).toBe('XSB=1');
  });

  it('builds the Set-Cookie value', () => {
    expect(stickySetCookie('SB', 'srv1')).toBe('SB=srv1; Path=/; HttpOnly');
    expect(stickySetCookie('SB', 'srv1', { path: '/app', secure: true, sameSite: 'Lax', maxAgeSeconds: 3600.7, httpOnly: false })).toBe(
      'SB=srv1; Path=/app; Max-Age=3600; Secure; SameSite=Lax',
    );
    expect(stickySetCookie('SB', 'v', { sameSite: 'None' })).toBe('SB=v; Path=/; HttpOnly; Secure; SameSite=None');
    expect(() => stickySetCookie('S B', 'v')).toThrow(RangeError);
    expect(() => stickySetCookie('SB', 'a;b')).toThrow(RangeError);
    expect(() => stickySetCookie('SB', 'v', { path: '/\r\nX: y' })).toThrow(RangeError);
    expect(NOCACHE_HEADER).toBe('private');
  });

  it('round-trips server ids through a cookie-safe value', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, unit: 'grapheme' }), (id) => {
        const v = cookieValueFor(id);
        expect(v).toMatch(/^[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]+$/);
        expect(() => stickySetCookie('SB', v)).not.toThrow();
        expect(serverIdFromCookie(readStickyCookie(`x=1; SB=${v}`, 'SB'))).toBe(id);
      }),
    );
    expect(cookieValueFor('10.0.0.1:8080')).toBe('10.0.0.1%3A8080');
  });

  it('never throws on bad input', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), fc.string({ unit: 'binary' }), (header, name) => {
        const v = readStickyCookie(header, name);
        expect(v === undefined || typeof v === 'string').toBe(true);
        stripStickyCookie(header, name);
        const id = serverIdFromCookie(header);
        expect(id === undefined || id.length > 0).toBe(true);
        expect(typeof cookieValueFor(header)).toBe('string');
      }),
    );
    expect(serverIdFromCookie('%E0%A4%A')).toBeUndefined();
    expect(serverIdFromCookie('%')).toBeUndefined();
    expect(serverIdFromCookie('')).toBeUndefined();
    expect(serverIdFromCookie(undefined)).toBeUndefined();
    expect(cookieValueFor('a\uD800b')).toBe('a%EF%BF%BDb');
  });
});
