import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisCluster } from '../helpers/redis.js';
import { redisStores } from './redis-fixture.js';
import { storeContract } from './store.contract.js';

// The same contract, against a real three-master Redis Cluster: every pool's keys share one hash
// tag, so each Lua script runs on the one node that owns that pool's slot.
let cluster: RedisCluster;
beforeAll(async () => {
  cluster = await RedisCluster.start(3);
}, 30_000);
afterAll(async () => {
  await cluster?.dispose();
});

const stores = redisStores(() => ({ mode: 'cluster', nodes: cluster.nodes }), 'sbc');
storeContract('redis cluster', stores.fixture());

describe('redis cluster: pools live on different nodes', () => {
  it('serves pools whose slots belong to different masters, each atomically', async () => {
    // Enough pools that, by CRC16 of their hash tags, they land on more than one master.
    const pools = Array.from({ length: 12 }, (_, i) => `pool${i}`);
    const a = await stores.fresh({ pools });
    const b = await stores.peer(a, { pools });
    for (const pool of pools) {
      await a.registerServer(pool, { id: 's', kind: 'sfu', serviceUrl: 'http://127.0.0.1:1', capacity: 10, initialHealth: 'healthy' }, Date.now());
    }
    const results = await Promise.all(
      pools.flatMap((pool) => [a, b].flatMap((store, k) => [0, 1, 2].map((i) => store.reserve(pool, { placementId: `${pool}-${k}-${i}`, units: 2, policy: 'most-free-capacity', now: Date.now() })))),
    );
    // 6 requests of 2 units per pool on a capacity of 10: exactly 5 fit in each pool.
    expect(results.filter((r) => r.outcome === 'reserved')).toHaveLength(pools.length * 5);
    for (const pool of pools) {
      await expect.poll(() => b.getServer(pool, 's')?.reserved).toBe(10);
      expect(a.listPlacements(pool)).toHaveLength(5);
    }
    const owners = new Set(pools.map((pool) => cluster.ownerOf(`{${pool}}`)));
    expect(owners.size).toBeGreaterThan(1);
  });
});
