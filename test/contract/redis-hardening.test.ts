import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServerRegistration } from '../../src/core/model.js';
import type { RedisStore } from '../../src/store/redis/index.js';
import { RedisServer } from '../helpers/redis.js';
import { redisStores } from './redis-fixture.js';

/**
 * The Redis store's scripts change all or nothing: input cjson refuses (a lone UTF-16 surrogate)
 * fails the script before its first write. And a reload that keeps failing backs off.
 */
let redis: RedisServer;
let raw: Redis;
beforeAll(async () => {
  redis = await RedisServer.start();
  raw = new Redis(redis.url);
});
afterAll(async () => {
  raw?.disconnect();
  await redis?.stop();
});

const stores = redisStores(() => ({ mode: 'standalone', url: redis.url }), 'sbhard');
const POOL = 'rooms';
const LONE = '\ud800';
const reg = (id: string, extra: Partial<ServerRegistration> = {}): ServerRegistration => ({
  id,
  kind: 'sfu',
  serviceUrl: 'http://127.0.0.1:1',
  capacity: 1000,
  initialHealth: 'healthy',
  ...extra,
});

/** What a second instance loads from Redis: the truth, not this instance's view. */
async function truth(store: RedisStore) {
  const peer = await stores.peer(store);
  return { servers: peer.listServers(POOL), placements: peer.listPlacements(POOL) };
}

describe('redis store: no half-done scripts', () => {
  it('a placement whose JSON Redis cannot decode reserves nothing', async () => {
    const store = await stores.fresh();
    await store.registerServer(POOL, reg('a'), Date.now());
    await expect(store.reserve(POOL, { placementId: 'r1', units: 1000, policy: 'most-free-capacity', now: Date.now(), attributes: { region: LONE } })).rejects.toThrow();
    const t = await truth(store);
    expect(t.servers[0]!.reserved).toBe(0);
    expect(t.placements).toEqual([]);
    expect(store.getServer(POOL, 'a')!.reserved).toBe(0);
    // The capacity is all still there.
    expect((await store.reserve(POOL, { placementId: 'r2', units: 1000, policy: 'most-free-capacity', now: Date.now() })).outcome).toBe('reserved');
  });

  it('a media-server answer Redis cannot decode leaves the placement pending and unchanged', async () => {
    const store = await stores.fresh();
    await store.registerServer(POOL, reg('a'), Date.now());
    const r = await store.reserve(POOL, { placementId: 'r1', units: 10, policy: 'most-free-capacity', now: Date.now() });
    expect(r.outcome).toBe('reserved');
    await expect(store.confirm(POOL, 'r1', 'a', { wsUrl: `ws://x/${LONE}` })).rejects.toThrow();
    const t = await truth(store);
    expect(t.placements).toMatchObject([{ id: 'r1', state: 'pending' }]);
    expect(t.servers[0]!.reserved).toBe(10);
  });

  it('a registration or heartbeat Redis cannot decode changes nothing', async () => {
    const store = await stores.fresh();
    await expect(store.registerServer(POOL, reg('bad', { labels: { zone: LONE } }), Date.now())).rejects.toThrow();
    await store.registerServer(POOL, reg('a'), Date.now());
    await expect(store.heartbeat(POOL, 'a', { [LONE]: 1, units: 999 }, Date.now())).rejects.toThrow();
    const t = await truth(store);
    expect(t.servers.map((s) => s.id)).toEqual(['a']);
    expect(t.servers[0]!.reported).toBeUndefined();
  });
});

describe('redis store: reloads back off', () => {
  it('a reload that keeps failing is retried with a growing delay, not once per event', async () => {
    const store = await stores.fresh();
    await store.registerServer(POOL, reg('a'), Date.now());
    const prefix = (store as unknown as { prefix: string }).prefix;
    // A record the snapshot cannot read: every reload fails.
    await raw.sadd(`${prefix}:{${POOL}}:servers`, 'broken');
    await raw.set(`${prefix}:{${POOL}}:server:broken`, '{not json');
    let snapshots = 0;
    const s = store as unknown as { snapshot: (pool: string) => Promise<unknown> };
    const original = s.snapshot.bind(store);
    s.snapshot = (pool: string) => {
      snapshots++;
      return original(pool);
    };
    // 150 events that each show a gap, over 1.5 s.
    for (let i = 0; i < 150; i++) {
      await raw.publish(`${prefix}:{${POOL}}:events`, JSON.stringify({ seq: 100_000 + i, t: 'resync' }));
      await new Promise((r) => setTimeout(r, 10));
    }
    // 100, 200, 400, 800 ms apart after the first failure: about 5 attempts, never 150.
    expect(snapshots).toBeGreaterThanOrEqual(2);
    expect(snapshots).toBeLessThanOrEqual(8);
    // Repaired: the instance retries on its own (no event, no write needed) and its view is whole
    // again — a registration made meanwhile by another instance included.
    await raw.srem(`${prefix}:{${POOL}}:servers`, 'broken');
    await raw.del(`${prefix}:{${POOL}}:server:broken`);
    const other = await stores.peer(store);
    await other.registerServer(POOL, reg('b'), Date.now());
    const deadline = Date.now() + 8000;
    while (store.listServers(POOL).length !== 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(store.listServers(POOL).map((x) => x.id).sort()).toEqual(['a', 'b']);
    expect((await store.reserve(POOL, { placementId: 'ok', units: 1, policy: 'most-free-capacity', now: Date.now() })).outcome).toBe('reserved');
  }, 20_000);
});
