import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { freeUnits, roomUnits, sfuCapacity, usedUnits } from '../../src/core/capacity.js';
import type { Server } from '../../src/core/model.js';
import { policies, rank } from '../../src/core/policies/index.js';
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
