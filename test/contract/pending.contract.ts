import { describe, expect, it } from 'vitest';
import type { ServerRegistration } from '../../src/core/model.js';
import type { StateStore } from '../../src/store/store.js';
import type { StoreFixture } from './store.contract.js';

/**
 * Pending placements have an owner and a deadline: past it, anyone may reclaim them, exactly once,
 * and a late confirm or release from the first owner cannot touch what replaced them. Run against
 * every store (memory and Redis) like the main contract.
 */
const POOL = 'rooms';

function reg(id: string, capacity: number): ServerRegistration {
  return { id, kind: 'sfu', serviceUrl: `http://127.0.0.1:1/${id}`, capacity, initialHealth: 'healthy' };
}

function reserve(store: StateStore, placementId: string, units: number, at: number, ttl = 1000, owner = 'instance-a') {
  return store.reserve(POOL, { placementId, units, policy: 'most-free-capacity', now: at, owner, pendingTtlMs: ttl });
}

export function pendingContract(name: string, fixture: StoreFixture): void {
  describe(`state store contract, pending placements: ${name}`, () => {
    it('records the owner, the attempt and the deadline; a confirm clears the deadline', async () => {
      const store = await fixture.open();
      await store.registerServer(POOL, reg('a', 100), Date.now());
      const t = Date.now();
      const r = await reserve(store, 'r1', 10, t, 5000);
      expect(r.outcome).toBe('reserved');
      const p = (r as { placement: { owner?: string; attempt?: string; deadline?: number } }).placement;
      expect(p.owner).toBe('instance-a');
      expect(p.deadline).toBe(t + 5000);
      expect(typeof p.attempt).toBe('string');
      const ready = await store.confirm(POOL, 'r1', 'a', { wsUrl: 'ws://x' }, p.attempt);
      expect(ready).toMatchObject({ state: 'ready', data: { wsUrl: 'ws://x' } });
      expect(ready!.deadline).toBeUndefined();
      expect(store.getPlacement(POOL, 'r1')!.deadline).toBeUndefined();
      // A ready placement never expires, however late it is.
      expect(await store.releaseExpired(POOL, t + 10 ** 9)).toEqual([]);
      expect((await reserve(store, 'r1', 10, t + 10 ** 9)).outcome).toBe('existing');
      expect(store.getServer(POOL, 'a')!.reserved).toBe(10);
    });

    it('answers "existing" before the deadline and reclaims the placement after it, counting its units once', async () => {
      const store = await fixture.open();
      await store.registerServer(POOL, reg('a', 100), Date.now());
      const t = Date.now();
      const first = await reserve(store, 'r1', 30, t, 1000, 'dead-instance');
      expect(first.outcome).toBe('reserved');
      expect((await reserve(store, 'r1', 30, t + 999)).outcome).toBe('existing');
      expect(store.getServer(POOL, 'a')!.reserved).toBe(30);

      const again = await reserve(store, 'r1', 30, t + 1001, 1000, 'instance-b');
      expect(again).toMatchObject({ outcome: 'reserved', placement: { id: 'r1', serverId: 'a', owner: 'instance-b', state: 'pending' }, reclaimed: { id: 'r1', owner: 'dead-instance' } });
      const second = (again as { placement: { attempt?: string } }).placement;
      expect(second.attempt).not.toBe((first as { placement: { attempt?: string } }).placement.attempt);
      expect(store.getServer(POOL, 'a')!.reserved).toBe(30);
      expect(store.listPlacements(POOL)).toHaveLength(1);
    });

    it('reclaims onto the same full server: the units it frees count as free', async () => {
      const store = await fixture.open();
      await store.registerServer(POOL, reg('a', 40), Date.now());
      const t = Date.now();
      await reserve(store, 'r1', 40, t, 100);
      expect((await reserve(store, 'other', 1, t + 50)).outcome).toBe('no-capacity');
      expect(await reserve(store, 'r1', 40, t + 200)).toMatchObject({ outcome: 'reserved', placement: { serverId: 'a' } });
      expect(store.getServer(POOL, 'a')!.reserved).toBe(40);
      // Its explanation sees the server as the reclaim leaves it: eligible, all 40 units free.
      expect(store.getPlacement(POOL, 'r1')!.why).toEqual({ policy: 'most-free-capacity', servers: 1, eligible: 1, ranked: [{ id: 'a', free: 40, capacity: 40 }] });
    });

    it('releases an expired placement even when nothing can take it again', async () => {
      const store = await fixture.open();
      await store.registerServer(POOL, reg('a', 40), Date.now());
      const t = Date.now();
      await reserve(store, 'r1', 40, t, 100);
      await store.setAdminState(POOL, 'a', 'drain');
      expect((await reserve(store, 'r1', 40, t + 200)).outcome).toBe('no-capacity');
      expect(store.getPlacement(POOL, 'r1')).toBeUndefined();
      expect(store.getServer(POOL, 'a')!.reserved).toBe(0);
    });

    it('a late confirm or release by the first owner does not touch the placement that replaced it', async () => {
      const store = await fixture.open();
      await store.registerServer(POOL, reg('a', 100), Date.now());
      const t = Date.now();
      const first = (await reserve(store, 'r1', 10, t, 100)) as { placement: { attempt?: string } };
      const second = (await reserve(store, 'r1', 10, t + 200, 10_000, 'instance-b')) as { placement: { attempt?: string } };
      expect(await store.confirm(POOL, 'r1', 'a', { late: true }, first.placement.attempt)).toBeUndefined();
      expect(await store.release(POOL, 'r1', 'a', first.placement.attempt)).toEqual({ outcome: 'not-found' });
      expect(store.getPlacement(POOL, 'r1')).toMatchObject({ state: 'pending', attempt: second.placement.attempt });
      expect(store.getServer(POOL, 'a')!.reserved).toBe(10);
      expect(await store.confirm(POOL, 'r1', 'a', { ok: true }, second.placement.attempt)).toMatchObject({ state: 'ready' });
    });

    it('patches weight and capacity; a capacity below what is reserved only stops new placements', async () => {
      const store = await fixture.open();
      const peer = await fixture.peer(store);
      await store.registerServer(POOL, reg('a', 100), Date.now());
      expect((await reserve(store, 'r1', 60, Date.now())).outcome).toBe('reserved');
      const patched = await store.patchServer(POOL, 'a', { weight: 37, capacity: 50 });
      expect(patched).toMatchObject({ weight: 37, capacity: 50, reserved: 60 });
      expect(peer.getServer(POOL, 'a')).toMatchObject({ weight: 37, capacity: 50 });
      expect((await reserve(store, 'r2', 1, Date.now())).outcome).toBe('no-capacity');
      expect(store.getPlacement(POOL, 'r1')).toBeDefined();
      expect(await store.patchServer(POOL, 'a', { capacity: 200 })).toMatchObject({ weight: 37, capacity: 200 });
      expect((await reserve(store, 'r2', 140, Date.now())).outcome).toBe('reserved');
      expect(await store.patchServer(POOL, 'missing', { weight: 1 })).toBeUndefined();
      // Attributes merge key by key (the agent-check client's maxconn, agentDown, agentAdmin).
      await store.registerServer(POOL, { ...reg('b', 10), attributes: { workers: 2 } }, Date.now());
      expect((await store.patchServer(POOL, 'b', { attributes: { maxconn: 30, agentAdmin: 'drain' } }))?.attributes).toEqual({ workers: 2, maxconn: 30, agentAdmin: 'drain' });
      expect((await store.patchServer(POOL, 'b', { attributes: { agentAdmin: '' } }))?.attributes).toEqual({ workers: 2, maxconn: 30, agentAdmin: '' });
      expect(peer.getServer(POOL, 'b')?.attributes).toEqual({ workers: 2, maxconn: 30, agentAdmin: '' });
      await store.registerServer(POOL, reg('c', 10), Date.now());
      expect((await store.patchServer(POOL, 'c', { attributes: { maxconn: 1 } }))?.attributes).toEqual({ maxconn: 1 });
    });

    it('sets the admin state only from the expected state when one is given', async () => {
      const store = await fixture.open();
      const peer = await fixture.peer(store);
      await store.registerServer(POOL, reg('a', 100), Date.now());
      await peer.setAdminState(POOL, 'a', 'maint'); // an operator, elsewhere
      expect(await store.setAdminState(POOL, 'a', 'active', 'drain')).toBeUndefined();
      expect((await fixture.peer(store)).getServer(POOL, 'a')!.adminState).toBe('maint');
      expect(await store.setAdminState(POOL, 'a', 'drain', 'maint')).toMatchObject({ adminState: 'drain' });
      expect(await store.setAdminState(POOL, 'a', 'active')).toMatchObject({ adminState: 'active' });
    });

    it('releaseExpired frees what is past its deadline, once, whichever instance asks', async () => {
      const store = await fixture.open();
      const peer = await fixture.peer(store);
      await store.registerServer(POOL, reg('a', 100), Date.now());
      const t = Date.now();
      await reserve(store, 'old', 10, t - 10_000, 1000);
      await reserve(store, 'young', 20, t, 60_000);
      const [x, y] = await Promise.all([store.releaseExpired(POOL, t), peer.releaseExpired(POOL, t)]);
      expect([...x, ...y].map((p) => p.id)).toEqual(['old']);
      expect(store.getPlacement(POOL, 'old')).toBeUndefined();
      expect(store.getPlacement(POOL, 'young')).toMatchObject({ state: 'pending' });
      expect(store.getServer(POOL, 'a')!.reserved).toBe(20);
      expect(await store.releaseExpired(POOL, t)).toEqual([]);
    });
  });
}
