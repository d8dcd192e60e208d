import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisSentinel } from '../helpers/redis.js';
import { redisStores } from './redis-fixture.js';
import { storeContract } from './store.contract.js';

// The same contract through Redis Sentinel (master, replica, sentinel), then a real failover.
let setup: RedisSentinel;
beforeAll(async () => {
  setup = await RedisSentinel.start();
}, 30_000);
afterAll(async () => {
  await setup?.dispose();
});

const stores = redisStores(() => ({ mode: 'sentinel', name: setup.name, sentinels: setup.sentinels }), 'sbs');
storeContract('redis sentinel', stores.fixture());

describe('redis sentinel: failover', () => {
  it('follows the promoted replica; placements survive, nothing is double-booked', async () => {
    const a = await stores.fresh();
    const b = await stores.peer(a);
    await a.registerServer('rooms', { id: 's', kind: 'sfu', serviceUrl: 'http://127.0.0.1:1', capacity: 10, initialHealth: 'healthy' }, Date.now());
    for (const id of ['r1', 'r2', 'r3']) expect((await a.reserve('rooms', { placementId: id, units: 2, policy: 'most-free-capacity', now: Date.now() })).outcome).toBe('reserved');
    const oldMaster = setup.master.port;
    expect(setup.currentMaster()).toBe(oldMaster);

    await setup.master.stop();
    // While no master answers, writes fail fast with StoreUnavailableError, not a hang.
    const started = Date.now();
    await expect(b.reserve('rooms', { placementId: 'during', units: 2, policy: 'most-free-capacity', now: Date.now() })).rejects.toThrow(/unavailable|not connected|Connection|closed/i);
    expect(Date.now() - started).toBeLessThan(3000);

    // Sentinel promotes the replica (down-after 1 s); both instances find it by themselves.
    await expect.poll(() => setup.currentMaster(), { timeout: 15_000, interval: 200 }).toBe(setup.replica.port);
    await expect
      .poll(async () => (await b.reserve('rooms', { placementId: 'after', units: 2, policy: 'most-free-capacity', now: Date.now() }).catch(() => ({ outcome: 'error' }))).outcome, {
        timeout: 15_000,
        interval: 250,
      })
      .toBe('reserved');
    // What was reserved before the failover is still there (replicated), plus the new one: 8 of 10.
    await expect.poll(() => a.getServer('rooms', 's')?.reserved, { timeout: 5000 }).toBe(8);
    expect(a.listPlacements('rooms').map((p) => p.id).sort()).toEqual(['after', 'r1', 'r2', 'r3']);
    // One more fits, the next does not: capacity is still enforced on the new master.
    expect((await a.reserve('rooms', { placementId: 'x', units: 2, policy: 'most-free-capacity', now: Date.now() })).outcome).toBe('reserved');
    expect((await b.reserve('rooms', { placementId: 'y', units: 2, policy: 'most-free-capacity', now: Date.now() })).outcome).toBe('no-capacity');
  }, 45_000);
});
