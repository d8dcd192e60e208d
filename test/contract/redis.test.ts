import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
