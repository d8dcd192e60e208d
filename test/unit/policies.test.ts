import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { freeUnits, roomUnits, sfuCapacity, usedUnits } from '../../src/core/capacity.js';
import type { Server } from '../../src/core/model.js';
import { eligible, policies, policyNames, rank, rankTop, type Policy, type PolicyName, type SelectionRequest } from '../../src/core/policies/index.js';
import { Remaining } from '../../src/core/policies/remaining.js';
import { newServer } from '../../src/core/server.js';

function server(id: string, capacity: number, extra: Partial<Server> = {}): Server {
  return { ...newServer({ id, kind: 'sfu', serviceUrl: 'http://x', capacity, initialHealth: 'healthy' }, 0, `e-${id}`), ...extra };
}

/** A deterministic random source for repeatable tests. */
function seeded(seed: number): () => number {
  let x = (Math.abs(seed) % 2147483646) + 1;
  return () => ((x = (x * 48271) % 2147483647) / 2147483647);
}

describe('capacity', () => {
  it('computes seed-000 numbers', () => {
    expect(sfuCapacity(4, 500)).toBe(2000);
    expect(roomUnits(2, 2)).toBe(4);
    expect(roomUnits(3, 2)).toBe(12);
    expect(roomUnits(10, 2)).toBe(180);
  });

  it('counts max(reserved, reported) as used', () => {
    expect(usedUnits({ reserved: 10, reported: { units: 40 } })).toBe(40);
    expect(usedUnits({ reserved: 50, reported: { units: 40 } })).toBe(50);
    expect(freeUnits({ capacity: 100, reserved: 10 })).toBe(90);
  });
});

describe('most-free-capacity', () => {
  const pick = policies['most-free-capacity'];
  const rnd = seeded(1);

  it('picks the server with the most free units', () => {
    const s = [server('a', 100, { reserved: 50 }), server('b', 80), server('c', 200, { reserved: 190 })];
    expect(pick(s, { units: 1 }, rnd)?.id).toBe('b');
  });

  it('skips unhealthy, drained, excluded and too-small servers', () => {
    const unhealthy = server('a', 1000);
    unhealthy.health = { ...unhealthy.health, status: 'unhealthy' };
    const s = [unhealthy, server('b', 900, { adminState: 'drain' }), server('c', 800), server('d', 10)];
    expect(pick(s, { units: 1 }, rnd)?.id).toBe('c');
    expect(pick(s, { units: 1, exclude: new Set(['c']) }, rnd)?.id).toBe('d');
    expect(pick(s, { units: 11, exclude: new Set(['c']) }, rnd)).toBeUndefined();
  });

  it('prefers the region when a server there fits', () => {
    const s = [server('eu', 100, { region: 'eu' }), server('us', 1000, { region: 'us' })];
    expect(pick(s, { units: 50, region: 'eu' }, rnd)?.id).toBe('eu');
    expect(pick(s, { units: 150, region: 'eu' }, rnd)?.id).toBe('us');
  });

  it('ranks every eligible server once, best first', () => {
    const s = [server('a', 10), server('b', 30), server('c', 20)];
    expect(rank(pick, s, { units: 1 }, rnd).map((x) => x.id)).toEqual(['b', 'c', 'a']);
  });
});

describe('every policy', () => {
  const arbServers = fc.array(
    fc.record({
      capacity: fc.integer({ min: 0, max: 100 }),
      reserved: fc.integer({ min: 0, max: 100 }),
      healthy: fc.boolean(),
      admin: fc.constantFrom('active' as const, 'drain' as const, 'maint' as const),
    }),
    { maxLength: 12 },
  );

  for (const [name, policy] of Object.entries(policies)) {
    it(`${name}: chooses only an eligible server, and one whenever any is eligible`, () => {
      fc.assert(
        fc.property(arbServers, fc.integer({ min: 1, max: 50 }), fc.integer(), (specs, units, seed) => {
          const list = specs.map((x, i) => {
            const s = server(`s${i}`, x.capacity, { reserved: Math.min(x.reserved, x.capacity), adminState: x.admin });
            s.health = { ...s.health, status: x.healthy ? 'healthy' : 'unhealthy' };
            return s;
          });
          const chosen = policy(list, { units }, seeded(seed));
          const eligible = list.filter((s) => s.adminState === 'active' && s.health.status === 'healthy' && freeUnits(s) >= units);
          if (eligible.length === 0) expect(chosen).toBeUndefined();
          else expect(eligible).toContain(chosen);
          if (name === 'most-free-capacity' && chosen) {
            expect(freeUnits(chosen)).toBe(Math.max(...eligible.map(freeUnits)));
          }
        }),
      );
    });
  }

  it('random spreads choices over all eligible servers', () => {
    const s = [server('a', 10), server('b', 10), server('c', 10)];
    const rnd = seeded(7);
    const counts = new Map<string, number>();
    for (let i = 0; i < 3000; i++) {
      const id = policies.random(s, { units: 1 }, rnd)!.id;
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    for (const id of ['a', 'b', 'c']) expect(counts.get(id)).toBeGreaterThan(850);
  });

  it('power-of-two-choices never picks the fullest of three when two others are freer', () => {
    const s = [server('full', 100, { reserved: 99 }), server('b', 100, { reserved: 10 }), server('c', 100, { reserved: 20 })];
    const rnd = seeded(3);
    const counts = new Map<string, number>();
    for (let i = 0; i < 600; i++) {
      const id = policies['power-of-two-choices'](s, { units: 1 }, rnd)!.id;
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    expect(counts.get('full')).toBeUndefined();
    expect(counts.get('b')!).toBeGreaterThan(counts.get('c')!);
  });
});

describe('rankTop', () => {
  // The policies as they were before rankTop (filter-based, two arrays per call): the reference
  // the single-pass policies must match draw for draw.
  const referenceCandidates = (servers: readonly Server[], request: SelectionRequest) => {
    const ok = servers.filter((s) => s.adminState === 'active' && s.health.status === 'healthy' && !request.exclude?.has(s.id) && freeUnits(s) >= request.units);
    const local = request.region ? ok.filter((s) => s.region === request.region) : [];
    return local.length > 0 ? local : ok;
  };
  const reference: Record<PolicyName, Policy> = {
    'most-free-capacity': (servers, request) => {
      let best: Server | undefined;
      for (const s of referenceCandidates(servers, request)) if (!best || freeUnits(s) > freeUnits(best)) best = s;
      return best;
    },
    random: (servers, request, rand) => {
      const list = referenceCandidates(servers, request);
      return list.length === 0 ? undefined : list[Math.min(list.length - 1, Math.floor(rand() * list.length))];
    },
    'power-of-two-choices': (servers, request, rand) => {
      const list = referenceCandidates(servers, request);
      if (list.length <= 1) return list[0];
      const i = Math.min(list.length - 1, Math.floor(rand() * list.length));
      let j = Math.min(list.length - 2, Math.floor(rand() * (list.length - 1)));
      if (j >= i) j += 1;
      return freeUnits(list[j]!) > freeUnits(list[i]!) ? list[j] : list[i];
    },
  };

  const arbPool = (maxLength: number) =>
    fc
      .array(
        fc.record({
          capacity: fc.integer({ min: 0, max: 60 }),
          reserved: fc.integer({ min: 0, max: 60 }),
          healthy: fc.boolean(),
          admin: fc.constantFrom('active' as const, 'active' as const, 'drain' as const, 'maint' as const),
          region: fc.constantFrom(undefined, 'eu', 'us'),
          excluded: fc.integer({ min: 0, max: 9 }),
        }),
        { maxLength },
      )
      .map((specs) => {
        const exclude = new Set<string>();
        const list = specs.map((x, i) => {
          const s = server(`s${i}`, x.capacity, { reserved: Math.min(x.reserved, x.capacity), adminState: x.admin, ...(x.region ? { region: x.region } : {}) });
          s.health = { ...s.health, status: x.healthy ? 'healthy' : 'unhealthy' };
          if (x.excluded === 0) exclude.add(s.id);
          return s;
        });
        return { list, exclude };
      });
  const arbRequest = fc.record({ units: fc.integer({ min: 0, max: 30 }), region: fc.constantFrom(undefined, 'eu', 'us', 'ap'), withExclude: fc.boolean() });
  const request = (r: { units: number; region: string | undefined; withExclude: boolean }, exclude: Set<string>): SelectionRequest => ({
    units: r.units,
    ...(r.region ? { region: r.region } : {}),
    ...(r.withExclude ? { exclude } : {}),
  });
  const ids = (list: readonly (Server | undefined)[]) => list.map((s) => s?.id);

  for (const name of policyNames) {
    const policy = policies[name];

    it(`${name}: a single pick is the old filter-based policy's pick, draw for draw`, () => {
      fc.assert(
        fc.property(arbPool(40), arbRequest, fc.integer(), ({ list, exclude }, r, seed) => {
          const req = request(r, exclude);
          expect(policy(list, req, seeded(seed))?.id).toBe(reference[name](list, req, seeded(seed))?.id);
        }),
        { numRuns: 300 },
      );
    });

    it(`${name}: rankTop's first pick is the policy's pick, and its k picks are rank's first k (same random sequence)`, () => {
      fc.assert(
        fc.property(arbPool(40), arbRequest, fc.integer(), fc.integer({ min: 1, max: 8 }), ({ list, exclude }, r, seed, k) => {
          const req = request(r, exclude);
          const top = rankTop(name, list, req, seeded(seed), k);
          expect(top[0]?.id).toBe(policy(list, req, seeded(seed))?.id);
          expect(ids(top)).toEqual(ids(rank(policy, list, req, seeded(seed)).slice(0, k)));
          // By name or by the function: the same.
          expect(ids(rankTop(policy, list, req, seeded(seed), k))).toEqual(ids(top));
        }),
        { numRuns: 300 },
      );
    });

    it(`${name}: rankTop returns distinct eligible servers, as many as asked for or all eligible, local ones first`, () => {
      fc.assert(
        fc.property(arbPool(40), arbRequest, fc.integer(), fc.integer({ min: 0, max: 50 }), ({ list, exclude }, r, seed, k) => {
          const req = request(r, exclude);
          const top = rankTop(name, list, req, seeded(seed), k);
          const ok = eligible(list, req);
          expect(new Set(ids(top)).size).toBe(top.length);
          for (const s of top) expect(ok).toContain(s);
          expect(top.length).toBe(Math.min(k, ok.length));
          const localCount = ok.filter((s) => req.region && s.region === req.region).length;
          top.forEach((s, i) => expect(i < localCount).toBe(Boolean(req.region) && s.region === req.region));
        }),
        { numRuns: 300 },
      );
    });

    it(`${name}: rankTop with k = ∞ is the whole of rank, also past the sorted-list / Fenwick switch`, () => {
      fc.assert(
        fc.property(arbPool(120), arbRequest, fc.integer(), ({ list, exclude }, r, seed) => {
          const req = request(r, exclude);
          expect(ids(rankTop(name, list, req, seeded(seed), Infinity))).toEqual(ids(rank(policy, list, req, seeded(seed))));
        }),
        { numRuns: 60 },
      );
    });

    it(`${name}: rankTop reads each server once and draws at most 2 random numbers per pick`, () => {
      const list = Array.from({ length: 3000 }, (_, i) => server(`s${i}`, 100 + (i % 7), { reserved: i % 50, ...(i % 3 ? { region: 'eu' } : {}) }));
      let reads = 0;
      const counted = new Proxy(list, {
        get(target, key, receiver) {
          if (typeof key === 'string' && /^\d+$/.test(key)) reads++;
          return Reflect.get(target, key, receiver);
        },
      });
      let draws = 0;
      const rnd = seeded(11);
      const top = rankTop(name, counted, { units: 4, region: 'eu' }, () => (draws++, rnd()), 4);
      expect(top).toHaveLength(4);
      expect(reads).toBe(list.length);
      expect(draws).toBeLessThanOrEqual(8);
      // A single pick: at most three passes (count, then find the drawn ones), however many servers.
      reads = 0;
      policy(counted, { units: 4, region: 'eu' }, rnd);
      expect(reads).toBeLessThanOrEqual(3 * list.length);
    });
  }

  it('most-free-capacity: rankTop keeps ties in listed order', () => {
    const s = [server('a', 10), server('b', 30), server('c', 30), server('d', 20), server('e', 30)];
    expect(ids(rankTop('most-free-capacity', s, { units: 1 }, seeded(1), 4))).toEqual(['b', 'c', 'e', 'd']);
  });

  it('falls back to one policy call per pick for a policy without rankTier', () => {
    const firstListed: Policy = (servers, req) => eligible(servers, req)[0];
    const s = [server('a', 10), server('b', 30, { adminState: 'drain' }), server('c', 20), server('d', 5)];
    expect(ids(rankTop(firstListed, s, { units: 6 }, seeded(1), 4))).toEqual(['a', 'c']);
    expect(rankTop(firstListed, s, { units: 6 }, seeded(1), 0)).toEqual([]);
  });

  it('Remaining finds the r-th index not taken, before and after the Fenwick switch', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 200 }), fc.array(fc.nat(), { maxLength: 200 }), fc.integer({ min: 0, max: 40 }), (n, draws, limit) => {
        const left = new Remaining(n, limit);
        const naive = Array.from({ length: n }, (_, i) => i);
        for (const d of draws) {
          if (naive.length === 0) break;
          const r = d % naive.length;
          expect(left.at(r)).toBe(naive[r]);
          left.take(naive[r]!);
          naive.splice(r, 1);
        }
        for (let r = 0; r < naive.length; r++) expect(left.at(r)).toBe(naive[r]);
      }),
    );
  });
});
