import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { whyText } from '../../src/core/explain.js';
import type { Placement } from '../../src/core/model.js';
import { RedisServer } from '../helpers/redis.js';
import { redisStores } from './redis-fixture.js';
import { pendingContract } from './pending.contract.js';
import { storeContract } from './store.contract.js';

let redis: RedisServer;
beforeAll(async () => {
  redis = await RedisServer.start();
});
afterAll(async () => {
  await redis?.stop();
});

const stores = redisStores(() => ({ mode: 'standalone', url: redis.url }), 'sbtest');
// A fresh key prefix per store gives every test (and every property run) an empty state.
storeContract('redis', stores.fixture());
pendingContract('redis', stores.fixture());

describe('redis store: a write whose own event never arrives', () => {
  it('reloads the view after the catch-up timeout instead of waiting forever', async () => {
    const store = await stores.fresh({ pools: ['rooms'], catchUpTimeoutMs: 300 });
    await store.registerServer('rooms', { id: 's1', kind: 'sfu', serviceUrl: 'http://127.0.0.1:1', capacity: 10, initialHealth: 'healthy' }, Date.now());
    // Stop receiving events: the next write's own event is "lost".
    await (store as unknown as { sub: { unsubscribe(): Promise<unknown> } }).sub.unsubscribe();
    const started = Date.now();
    const result = await store.reserve('rooms', { placementId: 'r1', units: 4, policy: 'most-free-capacity', now: Date.now() });
    const waited = Date.now() - started;
    expect(result.outcome).toBe('reserved');
    expect(waited).toBeGreaterThanOrEqual(250);
    expect(waited).toBeLessThan(1500);
    // Reloaded from Redis: the view has the placement and the reservation.
    expect(store.getPlacement('rooms', 'r1')?.serverId).toBe('s1');
    expect(store.getServer('rooms', 's1')?.reserved).toBe(4);
  });
});

describe('redis store: explaining a choice the script made on live numbers', () => {
  it("says so when the script took a server the view's ranking did not have", async () => {
    const store = await stores.fresh({ pools: ['rooms'], catchUpTimeoutMs: 300 });
    const peer = await stores.peer(store, { pools: ['rooms'] });
    const reg = (id: string, capacity: number) => ({ id, kind: 'sfu' as const, serviceUrl: 'http://127.0.0.1:1', capacity, initialHealth: 'healthy' as const });
    await store.registerServer('rooms', reg('a', 100), Date.now());
    await expect.poll(() => peer.getServer('rooms', 'a')?.id).toBe('a');
    // This instance stops hearing changes: its view keeps `a` empty and never learns of `b`.
    await (store as unknown as { sub: { unsubscribe(): Promise<unknown> } }).sub.unsubscribe();
    expect((await peer.reserve('rooms', { placementId: 'x', units: 95, policy: 'most-free-capacity', now: Date.now() })).outcome).toBe('reserved');
    await peer.registerServer('rooms', reg('b', 50), Date.now());

    const r = await store.reserve('rooms', { placementId: 'r1', units: 20, policy: 'most-free-capacity', now: Date.now() });
    expect(r).toMatchObject({ outcome: 'reserved', placement: { serverId: 'b' } });
    const { why } = (r as { placement: Placement }).placement;
    // Explained from the view (a alone, all free), decided by the script on the live numbers.
    expect(why).toEqual({ policy: 'most-free-capacity', servers: 1, eligible: 1, ranked: [{ id: 'a', free: 100, capacity: 100 }] });
    expect(whyText(why!, 'b')).toBe('most-free-capacity: the ranked candidates had filled up; taken on live numbers (1 eligible of 1)');
    await expect.poll(() => peer.getServer('rooms', 'b')?.reserved).toBe(20);
  });
});
