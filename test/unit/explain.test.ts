import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { explainSelection, ordinal, readWhy, skipReason, whyText, type PlacementWhy } from '../../src/core/explain.js';
import type { HealthStatus, Server } from '../../src/core/model.js';
import { policies, rankTop, type SelectionRequest } from '../../src/core/policies/index.js';
import { fits } from '../../src/core/policies/policy.js';
import { newServer, newPlacement, readyPlacement } from '../../src/core/server.js';

function server(id: string, capacity: number, extra: Partial<Server> = {}): Server {
  return { ...newServer({ id, kind: 'sfu', serviceUrl: 'http://x', capacity, initialHealth: 'healthy' }, 0, `e-${id}`), ...extra };
}

function withHealth(s: Server, status: HealthStatus): Server {
  return { ...s, health: { ...s.health, status } };
}

/** A deterministic random source for repeatable tests. */
function seeded(seed: number): () => number {
  let x = (Math.abs(seed) % 2147483646) + 1;
  return () => ((x = (x * 48271) % 2147483647) / 2147483647);
}

/** The explanation of what `policy` picks, as the stores build it. */
function explain(policy: 'most-free-capacity' | 'random' | 'power-of-two-choices', servers: Server[], request: SelectionRequest, random = seeded(7)) {
  const ranked = rankTop(policy, servers, request, random, 3);
  return { ranked, why: explainSelection(policy, servers, request, ranked) };
}

describe('explainSelection', () => {
  it('counts each skipped server once, by the first rule it fails', () => {
    const servers = [
      server('ok', 100, { reserved: 40 }),
      server('drained', 1000, { adminState: 'drain' }),
      server('maint', 1000, { adminState: 'maint' }),
      withHealth(server('sick', 1000), 'unhealthy'),
      // Unknown health is not healthy: it counts as unhealthy, even while drained too.
      withHealth(server('new', 1000, { adminState: 'drain' }), 'unknown'),
      server('full', 100, { reserved: 95 }),
      server('busy', 100, { reported: { units: 98 } }),
      server('refused', 500),
    ];
    const { ranked, why } = explain('most-free-capacity', servers, { units: 10, exclude: new Set(['refused', 'full']) });
    expect(ranked.map((s) => s.id)).toEqual(['ok']);
    expect(why).toEqual({
      policy: 'most-free-capacity',
      servers: 8,
      eligible: 1,
      // `full` is both too full and excluded: too full is the first rule it fails.
      skipped: { draining: 2, unhealthy: 2, full: 2, excluded: 1 },
      ranked: [{ id: 'ok', free: 60, capacity: 100 }],
    });
  });

  it('names a reason for exactly the servers fits() refuses (any server, any request)', () => {
    const arbServer = fc.record({
      capacity: fc.integer({ min: 0, max: 100 }),
      reserved: fc.integer({ min: 0, max: 120 }),
      reported: fc.option(fc.integer({ min: 0, max: 120 }), { nil: undefined }),
      admin: fc.constantFrom('active' as const, 'drain' as const, 'maint' as const),
      health: fc.constantFrom('healthy' as const, 'unhealthy' as const, 'unknown' as const),
      excluded: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(arbServer, { maxLength: 12 }), fc.integer({ min: 0, max: 60 }), (specs, units) => {
        const servers = specs.map((x, i) =>
          withHealth(server(`s${i}`, x.capacity, { reserved: x.reserved, adminState: x.admin, ...(x.reported === undefined ? {} : { reported: { units: x.reported } }) }), x.health),
        );
        const exclude = new Set(specs.flatMap((x, i) => (x.excluded ? [`s${i}`] : [])));
        const request = { units, exclude };
        for (const s of servers) expect(skipReason(s, request) === undefined).toBe(fits(s, units, exclude));
        const why = explainSelection('random', servers, request, []);
        const skipped = Object.values(why.skipped ?? {}).reduce((n, c) => n + c, 0);
        expect(why.eligible).toBe(servers.filter((s) => fits(s, units, exclude)).length);
        expect(why.eligible + skipped).toBe(servers.length);
        expect(Object.values(why.skipped ?? {}).every((c) => c > 0)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('leaves out empty parts: no skipped, region or ranked keys when there is nothing to say', () => {
    const { why } = explain('most-free-capacity', [server('a', 100)], { units: 1 });
    expect(why).toEqual({ policy: 'most-free-capacity', servers: 1, eligible: 1, ranked: [{ id: 'a', free: 100, capacity: 100 }] });
    expect(Object.keys(why).sort()).toEqual(['eligible', 'policy', 'ranked', 'servers']);
    const none = explainSelection('random', [], { units: 1 }, []);
    expect(none).toEqual({ policy: 'random', servers: 0, eligible: 0 });
    expect('ranked' in none || 'skipped' in none || 'region' in none).toBe(false);
    // An empty region is no region, as the policies take it.
    expect('region' in explainSelection('random', [server('a', 10)], { units: 1, region: '' }, [])).toBe(false);
  });

  it('tells whether the asked-for region had a server that could take it', () => {
    const servers = [server('eu-1', 100, { region: 'eu', reserved: 95 }), server('us-1', 100, { region: 'us' }), server('eu-2', 50, { region: 'eu' })];
    const local = explain('most-free-capacity', servers, { units: 10, region: 'eu' });
    expect(local.ranked[0]!.id).toBe('eu-2');
    expect(local.why.region).toEqual({ wanted: 'eu', local: true });
    // Region-local first, then the others (rankTop's order).
    expect(local.why.ranked!.map((c) => c.id)).toEqual(['eu-2', 'us-1']);

    // The only eu server with room is excluded: no local one could take it, any region did.
    const fallback = explain('most-free-capacity', servers, { units: 10, region: 'eu', exclude: new Set(['eu-2']) });
    expect(fallback.ranked[0]!.id).toBe('us-1');
    expect(fallback.why).toMatchObject({ region: { wanted: 'eu', local: false }, eligible: 1, skipped: { full: 1, excluded: 1 } });
    expect(explain('random', servers, { units: 10, region: 'mars' }).why.region).toEqual({ wanted: 'mars', local: false });
  });

  it("keeps the policy's first three candidates, best first, with their numbers then", () => {
    const servers = [server('a', 100, { reserved: 70 }), server('b', 100, { reserved: 10 }), server('c', 100), server('d', 100, { reserved: 50 }), server('e', 100, { reported: { units: 20 } })];
    const { ranked, why } = explain('most-free-capacity', servers, { units: 5 });
    expect(ranked.map((s) => s.id)).toEqual(['c', 'b', 'e']);
    expect(why.ranked).toEqual([
      { id: 'c', free: 100, capacity: 100 },
      { id: 'b', free: 90, capacity: 100 },
      { id: 'e', free: 80, capacity: 100 },
    ]);
    // Given more (the Redis store ranks four for its script), it still keeps three.
    const four = rankTop('most-free-capacity', servers, { units: 5 }, seeded(1), 4);
    expect(four).toHaveLength(4);
    expect(explainSelection('most-free-capacity', servers, { units: 5 }, four).ranked).toHaveLength(3);
  });

  it("the first ranked is the policy's own pick, for every policy (same random draws)", () => {
    const servers = Array.from({ length: 9 }, (_, i) => server(`s${i}`, 100, { reserved: (i * 37) % 100, region: i % 3 === 0 ? 'eu' : 'us' }));
    for (const name of ['most-free-capacity', 'random', 'power-of-two-choices'] as const) {
      for (let seed = 1; seed < 40; seed++) {
        const request = { units: 10, region: seed % 2 ? 'eu' : undefined, exclude: new Set(['s3']) };
        const pick = policies[name](servers, request, seeded(seed));
        const { why } = explain(name, servers, request, seeded(seed));
        expect(why.ranked?.[0]?.id, `${name} seed ${seed}`).toBe(pick?.id);
        expect(why.policy).toBe(name);
      }
    }
  });
});

describe('whyText', () => {
  const why: PlacementWhy = {
    policy: 'most-free-capacity',
    servers: 5,
    eligible: 3,
    skipped: { unhealthy: 1, draining: 1 },
    region: { wanted: 'eu', local: true },
    ranked: [
      { id: 'a', free: 60, capacity: 100 },
      { id: 'b', free: 40, capacity: 100 },
      { id: 'c', free: 10, capacity: 50 },
    ],
  };

  it('ranked 1st: the counts, what was skipped, its free units, the region', () => {
    expect(whyText(why, 'a')).toBe('most-free-capacity: ranked 1st of 3 eligible (of 5; 1 draining, 1 unhealthy skipped), 60 of 100 units free, in region eu');
  });

  it('ranked 2nd or 3rd (the first had filled up on the live numbers): says which, with its own numbers', () => {
    expect(whyText(why, 'b')).toBe('most-free-capacity: ranked 2nd of 3 eligible (of 5; 1 draining, 1 unhealthy skipped), 40 of 100 units free, in region eu');
    expect(whyText(why, 'c')).toContain('ranked 3rd of 3 eligible');
    expect(whyText(why, 'c')).toContain('10 of 50 units free');
  });

  it('not ranked: taken on the live numbers', () => {
    expect(whyText(why, 'z')).toBe('most-free-capacity: the ranked candidates had filled up; taken on live numbers (3 eligible of 5; 1 draining, 1 unhealthy skipped), in region eu');
    expect(whyText({ policy: 'random', servers: 2, eligible: 0, skipped: { full: 2 } }, 'z')).toBe('random: none was eligible in the view; taken on live numbers (0 eligible of 2; 2 full skipped)');
  });

  it('without skipped servers or region; any-region fallback; no units for unlimited pools', () => {
    expect(whyText({ policy: 'random', servers: 2, eligible: 2, ranked: [{ id: 'o1', free: 1e12, capacity: 1e12 }] }, 'o1')).toBe('random: ranked 1st of 2 eligible (of 2)');
    expect(whyText({ ...why, region: { wanted: 'ap', local: false } }, 'a')).toMatch(/, none in region ap could take it, so any region$/);
    expect(whyText({ ...why, skipped: { excluded: 2, full: 1 } }, 'a')).toContain('(of 5; 1 full, 2 excluded skipped)');
  });

  it('tolerates what a cjson round trip makes of an empty list', () => {
    const mangled = { policy: 'random', servers: 1, eligible: 1, ranked: {}, skipped: {} } as unknown as PlacementWhy;
    expect(whyText(mangled, 'a')).toBe('random: none was eligible in the view; taken on live numbers (1 eligible of 1)');
  });

  it('ordinals', () => {
    expect([1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 101, 111].map(ordinal)).toEqual(['1st', '2nd', '3rd', '4th', '11th', '12th', '13th', '21st', '22nd', '23rd', '101st', '111th']);
  });
});

describe('readWhy', () => {
  it('keeps a well-formed explanation as it is', () => {
    const why: PlacementWhy = { policy: 'random', servers: 4, eligible: 1, skipped: { draining: 1, unhealthy: 1, full: 1 }, region: { wanted: 'eu', local: false }, ranked: [{ id: 'a', free: 3, capacity: 5 }] };
    expect(readWhy(JSON.parse(JSON.stringify(why)))).toEqual(why);
  });

  it('none for placements without one or with something else; drops malformed parts', () => {
    expect(readWhy(undefined)).toBeUndefined();
    expect(readWhy('most-free-capacity')).toBeUndefined();
    expect(readWhy({ servers: 1, eligible: 1 })).toBeUndefined();
    expect(readWhy({ policy: 'random', servers: 1, eligible: 1, ranked: {}, skipped: { full: 0, bogus: 3 }, region: { wanted: 'eu' } })).toEqual({ policy: 'random', servers: 1, eligible: 1 });
    expect(readWhy({ policy: 'random', servers: 9, eligible: 9, ranked: [1, { id: 'x' }, ...'abcde'.split('').map((id) => ({ id, free: 1, capacity: 2 }))] })!.ranked!.map((c) => c.id)).toEqual(['a', 'b', 'c']);
  });
});

describe('placement records carry the explanation', () => {
  it('a new placement has the why it was given, and keeps it once ready', () => {
    const why: PlacementWhy = { policy: 'random', servers: 1, eligible: 1, ranked: [{ id: 's1', free: 10, capacity: 10 }] };
    const pending = newPlacement({ id: 's1', epoch: 'e1' }, { placementId: 'r1', units: 4, now: 1000 }, 'a1', why);
    expect(pending.why).toEqual(why);
    expect(readyPlacement(pending, {}).why).toEqual(why);
    expect('why' in newPlacement({ id: 's1', epoch: 'e1' }, { placementId: 'r1', units: 4, now: 1000 }, 'a1')).toBe(false);
    expect('why' in readyPlacement(newPlacement({ id: 's1', epoch: 'e1' }, { placementId: 'r1', units: 4, now: 1000 }, 'a1'), {})).toBe(false);
  });
});
