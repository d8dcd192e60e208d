import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { freeUnits, usedUnits } from '../../src/core/capacity.js';
import { whyText } from '../../src/core/explain.js';
import type { Placement, ServerRegistration } from '../../src/core/model.js';
import type { StateStore } from '../../src/store/store.js';

/**
 * The one contract every state store passes (memory and Redis run this same suite).
 * `open()` gives a store with a fresh, empty state; `peer(store)` gives a second instance sharing
 * that state (the same object for memory, a second connection for Redis).
 */
export interface StoreFixture {
  open(): Promise<StateStore>;
  peer(store: StateStore): Promise<StateStore>;
}

const POOL = 'rooms';
const now = () => Date.now();

function reg(id: string, capacity: number, extra: Partial<ServerRegistration> = {}): ServerRegistration {
  return { id, kind: 'sfu', serviceUrl: `http://127.0.0.1:1/${id}`, capacity, initialHealth: 'healthy', ...extra };
}

function reserve(store: StateStore, placementId: string, units: number, extra: Record<string, unknown> = {}) {
  return store.reserve(POOL, { placementId, units, policy: 'most-free-capacity', now: now(), ...extra });
}

async function eventually(check: () => void, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

export function storeContract(name: string, fixture: StoreFixture): void {
  describe(`state store contract: ${name}`, () => {
    it('registers a server, healthy and empty, and lists it', async () => {
      const store = await fixture.open();
      const { server, lost } = await store.registerServer(POOL, reg('a', 2000, { region: 'eu', labels: { zone: '1' } }), now());
      expect(lost).toEqual([]);
      expect(server).toMatchObject({ id: 'a', capacity: 2000, reserved: 0, adminState: 'active', region: 'eu', labels: { zone: '1' } });
      expect(server.health.status).toBe('healthy');
      expect(store.getServer(POOL, 'a')).toMatchObject({ id: 'a', capacity: 2000 });
      expect(store.listServers(POOL).map((s) => s.id)).toEqual(['a']);
      expect(store.listServers('other-pool')).toEqual([]);
    });

    it('reserves on the server with the most free capacity and counts the units', async () => {
      const store = await fixture.open();
      await store.registerServer(POOL, reg('small', 100), now());
      await store.registerServer(POOL, reg('big', 300), now());
      const first = await reserve(store, 'r1', 40);
      expect(first).toMatchObject({ outcome: 'reserved', placement: { id: 'r1', serverId: 'big', units: 40, state: 'pending' } });
      expect(store.getServer(POOL, 'big')!.reserved).toBe(40);
      expect(store.getPlacement(POOL, 'r1')).toMatchObject({ serverId: 'big', units: 40 });
      // big: 260 free, small: 100 → big again until it has less free than small.
      for (let i = 0; i < 4; i++) await reserve(store, `x${i}`, 40);
      expect(store.getServer(POOL, 'big')!.reserved).toBe(200);
      const next = await reserve(store, 'r2', 40);
      expect(next).toMatchObject({ outcome: 'reserved', placement: { serverId: 'small' } });
    });

    it('returns the existing placement for a known id without reserving twice', async () => {
      const store = await fixture.open();
      await store.registerServer(POOL, reg('a', 100), now());
      await reserve(store, 'room', 10);
      const again = await reserve(store, 'room', 10);
      expect(again).toMatchObject({ outcome: 'existing', placement: { id: 'room', serverId: 'a' } });
      expect(store.getServer(POOL, 'a')!.reserved).toBe(10);
    });

    it('answers no-capacity when nothing fits, and fills a server exactly', async () => {
      const store = await fixture.open();
      await store.registerServer(POOL, reg('a', 10), now());
      expect(await reserve(store, 'too-big', 11)).toEqual({ outcome: 'no-capacity' });
      expect((await reserve(store, 'r1', 6)).outcome).toBe('reserved');
      expect((await reserve(store, 'r2', 4)).outcome).toBe('reserved');
      expect(await reserve(store, 'r3', 1)).toEqual({ outcome: 'no-capacity' });
      expect(store.getServer(POOL, 'a')!.reserved).toBe(10);
    });

    it('skips unhealthy, drained and excluded servers', async () => {
      const store = await fixture.open();
      const { server: a } = await store.registerServer(POOL, reg('a', 1000), now());
      await store.registerServer(POOL, reg('b', 500), now());
      await store.registerServer(POOL, reg('c', 100), now());
      await store.recordHealth(POOL, 'a', a.epoch, { ...a.health, status: 'unhealthy', failures: 1 });
      expect(store.getServer(POOL, 'a')!.health.status).toBe('unhealthy');
      await store.setAdminState(POOL, 'b', 'drain');
      expect(store.getServer(POOL, 'b')!.adminState).toBe('drain');
      expect(await reserve(store, 'r1', 10)).toMatchObject({ placement: { serverId: 'c' } });
      expect(await reserve(store, 'r2', 10, { exclude: ['c'] })).toEqual({ outcome: 'no-capacity' });
      await store.setAdminState(POOL, 'b', 'active');
      expect(await reserve(store, 'r3', 10)).toMatchObject({ placement: { serverId: 'b' } });
    });

    it('prefers the requested region and falls back to any', async () => {
      const store = await fixture.open();
      await store.registerServer(POOL, reg('eu', 100, { region: 'eu' }), now());
      await store.registerServer(POOL, reg('us', 1000, { region: 'us' }), now());
      expect(await reserve(store, 'r1', 60, { region: 'eu' })).toMatchObject({ placement: { serverId: 'eu' } });
      expect(await reserve(store, 'r2', 60, { region: 'eu' })).toMatchObject({ placement: { serverId: 'us' } });
      expect(await reserve(store, 'r3', 10, { region: 'mars' })).toMatchObject({ placement: { serverId: 'us' } });
    });

    for (const policy of ['most-free-capacity', 'random', 'power-of-two-choices'] as const) {
      it(`explains a placement (${policy}): eligible, why the others were skipped, the ranked candidates; kept through confirm and reload`, async () => {
        const store = await fixture.open();
        await store.registerServer(POOL, reg('ok', 100), now());
        await store.registerServer(POOL, reg('drained', 1000), now());
        const { server: sick } = await store.registerServer(POOL, reg('sick', 1000), now());
        await store.registerServer(POOL, reg('small', 5), now());
        await store.setAdminState(POOL, 'drained', 'drain');
        await store.recordHealth(POOL, 'sick', sick.epoch, { ...sick.health, status: 'unhealthy', failures: 1 });
        const r = await reserve(store, 'r1', 10, { policy });
        expect(r.outcome).toBe('reserved');
        const { placement } = r as { placement: Placement };
        const expected = { policy, servers: 4, eligible: 1, skipped: { draining: 1, unhealthy: 1, full: 1 }, ranked: [{ id: 'ok', free: 100, capacity: 100 }] };
        expect(placement.serverId).toBe('ok');
        expect(placement.why).toEqual(expected);
        expect(placement.why!.ranked![0]!.id).toBe(placement.serverId);
        expect(whyText(placement.why!, placement.serverId)).toBe(`${policy}: ranked 1st of 1 eligible (of 4; 1 draining, 1 unhealthy, 1 full skipped), 100 of 100 units free`);
        expect(store.getPlacement(POOL, 'r1')!.why).toEqual(expected);
        expect(store.listPlacements(POOL).map((p) => p.why)).toEqual([expected]);
        const ready = await store.confirm(POOL, 'r1', 'ok', { wsUrl: 'ws://x' }, placement.attempt, placement);
        expect(ready!.why).toEqual(expected);
        expect(store.getPlacement(POOL, 'r1')!.why).toEqual(expected);
        const late = await fixture.peer(store);
        expect(late.getPlacement(POOL, 'r1')!.why).toEqual(expected);
        expect(late.listPlacements(POOL, 'ok').map((p) => p.why)).toEqual([expected]);
        // Asked for again: the existing placement, with the explanation of when it was made.
        expect(await reserve(store, 'r1', 10, { policy })).toMatchObject({ outcome: 'existing', placement: { why: expected } });
      });
    }

    it('explains the region: local when a server there could take it, any region otherwise', async () => {
      const store = await fixture.open();
      await store.registerServer(POOL, reg('eu', 100, { region: 'eu' }), now());
      await store.registerServer(POOL, reg('us', 1000, { region: 'us' }), now());
      const local = await reserve(store, 'r1', 60, { region: 'eu' });
      expect(local).toMatchObject({ placement: { serverId: 'eu' } });
      expect((local as { placement: Placement }).placement.why).toEqual({
        policy: 'most-free-capacity',
        servers: 2,
        eligible: 2,
        region: { wanted: 'eu', local: true },
        ranked: [
          { id: 'eu', free: 100, capacity: 100 },
          { id: 'us', free: 1000, capacity: 1000 },
        ],
      });
      // eu has 40 left: no server in eu can take 60, any region does.
      const away = await reserve(store, 'r2', 60, { region: 'eu' });
      expect(away).toMatchObject({ placement: { serverId: 'us' } });
      const expected = { policy: 'most-free-capacity', servers: 2, eligible: 1, skipped: { full: 1 }, region: { wanted: 'eu', local: false }, ranked: [{ id: 'us', free: 1000, capacity: 1000 }] };
      expect((away as { placement: Placement }).placement.why).toEqual(expected);
      expect(store.getPlacement(POOL, 'r2')!.why).toEqual(expected);
      expect((await fixture.peer(store)).getPlacement(POOL, 'r2')!.why).toEqual(expected);
      expect(whyText(store.getPlacement(POOL, 'r2')!.why!, 'us')).toMatch(/, none in region eu could take it, so any region$/);
      expect(await reserve(store, 'r3', 10, { region: 'mars' })).toMatchObject({ placement: { serverId: 'us', why: { region: { wanted: 'mars', local: false } } } });
    });

    it('leaves out what it has nothing to say about: no empty skipped, region or ranked come back', async () => {
      const store = await fixture.open();
      await store.registerServer(POOL, reg('a', 100), now());
      await store.registerServer(POOL, reg('b', 50), now());
      const r = (await reserve(store, 'r1', 10)) as { placement: Placement };
      const expected = {
        policy: 'most-free-capacity',
        servers: 2,
        eligible: 2,
        ranked: [
          { id: 'a', free: 100, capacity: 100 },
          { id: 'b', free: 50, capacity: 50 },
        ],
      };
      const late = await fixture.peer(store);
      for (const p of [r.placement, store.getPlacement(POOL, 'r1')!, late.getPlacement(POOL, 'r1')!]) {
        expect(p.serverId).toBe('a');
        expect(p.why).toEqual(expected);
        expect(Object.keys(p.why!).sort()).toEqual(['eligible', 'policy', 'ranked', 'servers']);
      }
      // A server the caller excluded counts as excluded, nothing else.
      const other = (await reserve(store, 'r2', 10, { exclude: ['a'] })) as { placement: Placement };
      expect(other.placement).toMatchObject({ serverId: 'b', why: { servers: 2, eligible: 1, skipped: { excluded: 1 }, ranked: [{ id: 'b', free: 50, capacity: 50 }] } });
      expect(Object.keys(other.placement.why!.skipped!)).toEqual(['excluded']);
    });

    it('counts reported load as max(reserved, reported)', async () => {
      // Fixed numbers, not recomputed from the formula: capacity 100, 20 units reserved.
      const store = await fixture.open();
      await store.registerServer(POOL, reg('a', 100), now());
      expect((await reserve(store, 'r1', 20)).outcome).toBe('reserved');
      const units = () => {
        const s = store.getServer(POOL, 'a')!;
        return { reserved: s.reserved, used: usedUnits(s), free: freeUnits(s) };
      };
      expect(units()).toEqual({ reserved: 20, used: 20, free: 80 });

      // The server reports more than was reserved: 95 used (not 20, not 20 + 95), 5 free.
      const hb = await store.heartbeat(POOL, 'a', { units: 95, cpu: 40 }, now());
      expect(hb?.reported).toEqual({ units: 95, cpu: 40 });
      expect(units()).toEqual({ reserved: 20, used: 95, free: 5 });
      expect(await reserve(store, 'r2', 6)).toEqual({ outcome: 'no-capacity' });
      expect(await reserve(store, 'r3', 5)).toMatchObject({ outcome: 'reserved', placement: { serverId: 'a', units: 5 } });
      // Reserved is now 25, still below the reported 95: used stays 95 (not 25 + 95), free 5.
      expect(units()).toEqual({ reserved: 25, used: 95, free: 5 });
      expect(await reserve(store, 'r4', 6)).toEqual({ outcome: 'no-capacity' });

      // The server reports less than was reserved: the reservation counts (25 used, not 10), 75 free.
      await store.heartbeat(POOL, 'a', { units: 10 }, now());
      expect(units()).toEqual({ reserved: 25, used: 25, free: 75 });
      expect(await reserve(store, 'r5', 76)).toEqual({ outcome: 'no-capacity' });
      expect(await reserve(store, 'r6', 75)).toMatchObject({ outcome: 'reserved', placement: { serverId: 'a', units: 75 } });
      expect(units()).toEqual({ reserved: 100, used: 100, free: 0 });

      expect(await store.heartbeat(POOL, 'nope', undefined, now())).toBeUndefined();
    });

    it('releases placements, on the right server only', async () => {
      const store = await fixture.open();
      await store.registerServer(POOL, reg('a', 100), now());
      await reserve(store, 'r1', 30);
      expect(await store.release(POOL, 'r1', 'b')).toMatchObject({ outcome: 'wrong-server', placement: { serverId: 'a' } });
      expect(store.getServer(POOL, 'a')!.reserved).toBe(30);
      expect(await store.release(POOL, 'r1', 'a')).toMatchObject({ outcome: 'released', placement: { id: 'r1' } });
      expect(store.getServer(POOL, 'a')!.reserved).toBe(0);
      expect(store.getPlacement(POOL, 'r1')).toBeUndefined();
      expect(await store.release(POOL, 'r1')).toEqual({ outcome: 'not-found' });
    });

    it('confirms a placement with the server answer, exactly as given', async () => {
      const store = await fixture.open();
      await store.registerServer(POOL, reg('a', 100), now());
      await reserve(store, 'r1', 2, { notifyUri: 'http://127.0.0.1:9/notify', attributes: { maxPeerCount: 2 } });
      const data = { protocol: '2060-mediasoup-v1', wsUrl: 'wss://x:443/a?b=1', roomId: 'r1', list: [], nested: { empty: {} } };
      expect(await store.confirm(POOL, 'r1', 'other', data)).toBeUndefined();
      const ready = await store.confirm(POOL, 'r1', 'a', data);
      expect(ready).toMatchObject({ state: 'ready', data, notifyUri: 'http://127.0.0.1:9/notify', attributes: { maxPeerCount: 2 } });
      expect(store.getPlacement(POOL, 'r1')!.data).toEqual(data);
      expect(await reserve(store, 'r1', 2)).toMatchObject({ outcome: 'existing', placement: { state: 'ready', data } });
    });

    it('a re-registration replaces the server and loses its placements', async () => {
      const store = await fixture.open();
      const { server: first } = await store.registerServer(POOL, reg('a', 100), now());
      await reserve(store, 'r1', 30);
      await reserve(store, 'r2', 20);
      const { server, lost } = await store.registerServer(POOL, reg('a', 200), now());
      expect(server.epoch).not.toBe(first.epoch);
      expect(server).toMatchObject({ capacity: 200, reserved: 0 });
      expect(lost.map((l) => l.placement.id).sort()).toEqual(['r1', 'r2']);
      expect(lost.every((l) => l.reason === 'server-restarted')).toBe(true);
      expect(store.listPlacements(POOL)).toEqual([]);
      expect(store.getServer(POOL, 'a')!.reserved).toBe(0);
      // A probe of the old registration must not touch the new one.
      expect(await store.recordHealth(POOL, 'a', first.epoch, { ...first.health, status: 'unhealthy' })).toBeUndefined();
      expect(store.getServer(POOL, 'a')!.health.status).toBe('healthy');
    });

    it('deregisters a server and loses its placements', async () => {
      const store = await fixture.open();
      await store.registerServer(POOL, reg('a', 100), now());
      await reserve(store, 'r1', 30);
      const { server, lost } = await store.deregisterServer(POOL, 'a');
      expect(server?.id).toBe('a');
      expect(lost).toMatchObject([{ placement: { id: 'r1' }, reason: 'server-deregistered' }]);
      expect(store.getServer(POOL, 'a')).toBeUndefined();
      expect(store.getPlacement(POOL, 'r1')).toBeUndefined();
      expect(await store.deregisterServer(POOL, 'a')).toEqual({ lost: [] });
      expect(await store.release(POOL, 'r1')).toEqual({ outcome: 'not-found' });
    });

    it('releases all placements of one registration on demand', async () => {
      const store = await fixture.open();
      const { server } = await store.registerServer(POOL, reg('a', 100), now());
      await reserve(store, 'r1', 30);
      expect(await store.releaseServerPlacements(POOL, 'a', 'stale-epoch', 'server-unhealthy')).toEqual([]);
      const lost = await store.releaseServerPlacements(POOL, 'a', server.epoch, 'server-unhealthy');
      expect(lost).toMatchObject([{ placement: { id: 'r1' }, reason: 'server-unhealthy' }]);
      expect(store.getServer(POOL, 'a')!.reserved).toBe(0);
      expect(store.listPlacements(POOL, 'a')).toEqual([]);
    });

    it('never over-books under concurrent reservations', async () => {
      const store = await fixture.open();
      const other = await fixture.peer(store);
      await store.registerServer(POOL, reg('a', 120), now());
      await store.registerServer(POOL, reg('b', 80), now());
      await eventually(() => expect(other.listServers(POOL)).toHaveLength(2));
      const results = await Promise.all(
        Array.from({ length: 120 }, (_, i) => reserve(i % 2 ? store : other, `c${i}`, 4)),
      );
      const reserved = results.filter((r) => r.outcome === 'reserved');
      expect(reserved).toHaveLength(50);
      expect(results.filter((r) => r.outcome === 'no-capacity')).toHaveLength(70);
      await eventually(() => {
        for (const s of [store, other]) {
          expect(s.getServer(POOL, 'a')!.reserved).toBe(120);
          expect(s.getServer(POOL, 'b')!.reserved).toBe(80);
          expect(s.listPlacements(POOL)).toHaveLength(50);
        }
      });
    });

    for (const policy of ['random', 'power-of-two-choices'] as const) {
      it(`policy ${policy} places within capacity`, async () => {
        const store = await fixture.open();
        await store.registerServer(POOL, reg('a', 40), now());
        await store.registerServer(POOL, reg('b', 40), now());
        const results = await Promise.all(Array.from({ length: 30 }, (_, i) => reserve(store, `p${i}`, 4, { policy })));
        expect(results.filter((r) => r.outcome === 'reserved')).toHaveLength(20);
        expect(store.getServer(POOL, 'a')!.reserved + store.getServer(POOL, 'b')!.reserved).toBe(80);
      });
    }

    it('shares changes with a peer instance', async () => {
      const store = await fixture.open();
      const other = await fixture.peer(store);
      const events: string[] = [];
      other.subscribe((e) => events.push(e.type));
      await store.registerServer(POOL, reg('a', 100), now());
      await reserve(store, 'r1', 10);
      await eventually(() => {
        expect(other.getServer(POOL, 'a')?.reserved).toBe(10);
        expect(other.getPlacement(POOL, 'r1')?.serverId).toBe('a');
      });
      expect(events).toContain('server');
      expect(events).toContain('placement');
      await other.release(POOL, 'r1');
      await other.setAdminState(POOL, 'a', 'maint');
      await eventually(() => {
        expect(store.getPlacement(POOL, 'r1')).toBeUndefined();
        expect(store.getServer(POOL, 'a')).toMatchObject({ reserved: 0, adminState: 'maint' });
      });
    });

    it('a newly started instance loads the existing servers and placements', async () => {
      const store = await fixture.open();
      await store.registerServer(POOL, reg('a', 100), now());
      await store.registerServer(POOL, reg('b', 100), now());
      await reserve(store, 'r1', 30);
      await reserve(store, 'r2', 20);
      await store.confirm(POOL, 'r1', store.getPlacement(POOL, 'r1')!.serverId, { wsUrl: 'ws://x' });
      const late = await fixture.peer(store);
      expect(late.listServers(POOL).map((s) => [s.id, s.reserved]).sort()).toEqual(
        store.listServers(POOL).map((s) => [s.id, s.reserved]).sort(),
      );
      expect(late.getPlacement(POOL, 'r1')).toEqual(store.getPlacement(POOL, 'r1'));
      expect(late.listPlacements(POOL)).toHaveLength(2);
      expect(late.getServer(POOL, 'a')!.health.status).toBe('healthy');
    });

    it('hands out leases to one holder at a time', async () => {
      const store = await fixture.open();
      const other = await fixture.peer(store);
      expect(await store.acquireLeases(POOL, 'one', ['a', 'b'], 300)).toEqual(['a', 'b']);
      expect(await other.acquireLeases(POOL, 'two', ['a', 'b', 'c'], 300)).toEqual(['c']);
      expect(await store.acquireLeases(POOL, 'one', ['a', 'b', 'c'], 300)).toEqual(['a', 'b']);
      await new Promise((r) => setTimeout(r, 400));
      expect(await other.acquireLeases(POOL, 'two', ['a'], 300)).toEqual(['a']);
    });

    it('keeps reserved equal to the sum of placements, and the counts equal to the lists, under any sequence of operations', async () => {
      const op = fc.oneof(
        fc.record({ t: fc.constant('reserve' as const), id: fc.integer({ min: 0, max: 15 }), units: fc.integer({ min: 1, max: 40 }) }),
        fc.record({ t: fc.constant('release' as const), id: fc.integer({ min: 0, max: 15 }) }),
        fc.record({ t: fc.constant('register' as const), server: fc.constantFrom('a', 'b', 'c'), capacity: fc.integer({ min: 0, max: 100 }) }),
        fc.record({ t: fc.constant('deregister' as const), server: fc.constantFrom('a', 'b', 'c') }),
        fc.record({ t: fc.constant('admin' as const), server: fc.constantFrom('a', 'b', 'c'), state: fc.constantFrom('active' as const, 'drain' as const) }),
        fc.record({ t: fc.constant('load' as const), server: fc.constantFrom('a', 'b', 'c'), units: fc.integer({ min: 0, max: 120 }) }),
      );
      await fc.assert(
        fc.asyncProperty(fc.array(op, { maxLength: 40 }), async (ops) => {
          const store = await fixture.open();
          for (const o of ops) {
            if (o.t === 'reserve') {
              const before = store.getPlacement(POOL, `p${o.id}`);
              const r = await reserve(store, `p${o.id}`, o.units);
              if (before) expect(r.outcome).toBe('existing');
              if (r.outcome === 'reserved') {
                const s = store.getServer(POOL, r.placement.serverId)!;
                expect(Math.max(s.reserved, s.reported?.units ?? 0)).toBeLessThanOrEqual(Math.max(s.capacity, s.reported?.units ?? 0));
                expect(s.reserved).toBeLessThanOrEqual(s.capacity);
              }
            } else if (o.t === 'release') await store.release(POOL, `p${o.id}`);
            else if (o.t === 'register') await store.registerServer(POOL, reg(o.server, o.capacity), now());
            else if (o.t === 'deregister') await store.deregisterServer(POOL, o.server);
            else if (o.t === 'admin') await store.setAdminState(POOL, o.server, o.state);
            else await store.heartbeat(POOL, o.server, { units: o.units }, now());
            for (const s of store.listServers(POOL)) {
              const sum = store.listPlacements(POOL, s.id).reduce((n, p) => n + p.units, 0);
              expect(s.reserved).toBe(sum);
              expect(store.countPlacements(POOL, s.id)).toBe(store.listPlacements(POOL, s.id).length);
            }
            for (const p of store.listPlacements(POOL)) expect(store.getServer(POOL, p.serverId)).toBeDefined();
            expect(store.countPlacements(POOL)).toBe(store.listPlacements(POOL).length);
            expect(store.countPlacements(POOL, 'never-registered')).toBe(0);
          }
        }),
        { numRuns: 40 },
      );
    });
  });

  describe(`state store contract: ${name}: session indexes`, () => {
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

    it('sets, gets, overwrites and deletes; indexes and pools are separate', async () => {
      const store = await fixture.open();
      expect(await store.getIndex(POOL, 'spbhid', 'abc')).toBeUndefined();
      await store.setIndex(POOL, 'spbhid', 'abc', '__defaultVhost__/live/one', 10_000);
      expect(await store.getIndex(POOL, 'spbhid', 'abc')).toBe('__defaultVhost__/live/one');
      expect(await store.getIndex(POOL, 'ufrag', 'abc')).toBeUndefined();
      expect(await store.getIndex('other-pool', 'spbhid', 'abc')).toBeUndefined();
      await store.setIndex(POOL, 'spbhid', 'abc', 'second', 10_000);
      expect(await store.getIndex(POOL, 'spbhid', 'abc')).toBe('second');
      await store.setIndex(POOL, 'spbhid', 'empty', '', 10_000);
      expect(await store.getIndex(POOL, 'spbhid', 'empty')).toBe('');
      await store.deleteIndex(POOL, 'spbhid', 'abc');
      expect(await store.getIndex(POOL, 'spbhid', 'abc')).toBeUndefined();
      await store.deleteIndex(POOL, 'spbhid', 'never-set');
    });

    it('keeps keys apart whatever they hold (braces, spaces, unicode, long keys)', async () => {
      const store = await fixture.open();
      const keys = ['a', 'A', '{other}', '}{x', 'with space', 'ключ', 'x'.repeat(1024), 'x'.repeat(1023), 'a:b', 'a/b', '#', 'a\u0000b'];
      for (const [i, key] of keys.entries()) await store.setIndex(POOL, 'ufrag', key, `v${i}`, 10_000);
      for (const [i, key] of keys.entries()) expect(await store.getIndex(POOL, 'ufrag', key)).toBe(`v${i}`);
    });

    it('refuses bad index names, keys and TTLs', async () => {
      const store = await fixture.open();
      for (const index of ['', 'Spbhid', 'sp-bhid', 'a1', 'x'.repeat(33)]) {
        await expect(store.setIndex(POOL, index, 'k', 'v', 1000)).rejects.toThrow(RangeError);
        await expect(store.getIndex(POOL, index, 'k')).rejects.toThrow(RangeError);
      }
      for (const ttl of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
        await expect(store.setIndex(POOL, 'spbhid', 'k', 'v', ttl)).rejects.toThrow(/ttlMs/);
      }
      await expect(store.setIndex(POOL, 'spbhid', '', 'v', 1000)).rejects.toThrow(/key/);
      await expect(store.setIndex(POOL, 'spbhid', 'x'.repeat(1025), 'v', 1000)).rejects.toThrow(/key/);
      expect(await store.getIndex(POOL, 'spbhid', 'k')).toBeUndefined();
    });

    it('expires an entry after its TTL', async () => {
      const store = await fixture.open();
      await store.setIndex(POOL, 'spbhid', 'short', 'v', 150);
      await store.setIndex(POOL, 'spbhid', 'long', 'v', 10_000);
      expect(await store.getIndex(POOL, 'spbhid', 'short')).toBe('v');
      await sleep(300);
      expect(await store.getIndex(POOL, 'spbhid', 'short')).toBeUndefined();
      expect(await store.getIndex(POOL, 'spbhid', 'long')).toBe('v');
    });

    it('a renewal extends the TTL from the time of renewal', async () => {
      const store = await fixture.open();
      await store.setIndex(POOL, 'ufrag', 'k', 'v', 400);
      await sleep(250);
      await store.setIndex(POOL, 'ufrag', 'k', 'v', 400);
      await sleep(250); // 500 ms after the first set: alive only thanks to the renewal
      expect(await store.getIndex(POOL, 'ufrag', 'k')).toBe('v');
      await sleep(300);
      expect(await store.getIndex(POOL, 'ufrag', 'k')).toBeUndefined();
    });

    it('another instance reads, renews and deletes what the first wrote', async () => {
      const store = await fixture.open();
      const other = await fixture.peer(store);
      await store.setIndex(POOL, 'spbhid', 'shared', 'stream-1', 10_000);
      expect(await other.getIndex(POOL, 'spbhid', 'shared')).toBe('stream-1');
      await other.setIndex(POOL, 'spbhid', 'shared', 'stream-2', 10_000);
      expect(await store.getIndex(POOL, 'spbhid', 'shared')).toBe('stream-2');
      await other.deleteIndex(POOL, 'spbhid', 'shared');
      expect(await store.getIndex(POOL, 'spbhid', 'shared')).toBeUndefined();
    });
  });
}
