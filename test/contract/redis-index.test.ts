import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreUnavailableError } from '../../src/store/store.js';
import { RedisServer } from '../helpers/redis.js';
import { redisStores } from './redis-fixture.js';

// Redis-only checks of the session indexes (the shared behaviour is in store.contract.ts): the key
// scheme, that a key cannot leave its pool's slot, and outages.
let redis: RedisServer;
let raw: Redis;
beforeAll(async () => {
  redis = await RedisServer.start();
  raw = new Redis(redis.url);
  raw.on('error', () => {}); // reconnects by itself after the outage test
});
afterAll(async () => {
  raw?.disconnect();
  await redis?.dispose();
});

const stores = redisStores(() => ({ mode: 'standalone', url: redis.url }), 'sbidx');

describe('redis store: session index keys', () => {
  it('are <prefix>:{<pool>}:idx:<index>:<key>, with a TTL; odd or long keys are hashed', async () => {
    const store = await stores.fresh();
    const plain = 'live/stream-1:x@y~z.';
    const odd = ['{evil}', 'a b', 'x'.repeat(201), 'ключ'];
    await store.setIndex('rooms', 'spbhid', plain, 'v', 60_000);
    for (const k of odd) await store.setIndex('rooms', 'spbhid', k, 'v', 60_000);
    const keys = await raw.keys('sbidx*:idx:*');
    const prefix = keys[0]!.slice(0, keys[0]!.indexOf(':'));
    expect(keys).toContain(`${prefix}:{rooms}:idx:spbhid:${plain}`);
    expect(keys).toHaveLength(1 + odd.length);
    const hashed = keys.filter((k) => !k.endsWith(plain));
    for (const k of hashed) expect(k).toMatch(new RegExp(`^${prefix}:\\{rooms\\}:idx:spbhid:#[A-Za-z0-9_-]{43}$`));
    // Every key hashes to the pool's slot (the first {...} is the pool's).
    for (const k of keys) expect(k.indexOf('{')).toBe(prefix.length + 1);
    const ttl = await raw.pttl(`${prefix}:{rooms}:idx:spbhid:${plain}`);
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
  });

  it('refuses a pool the store does not serve', async () => {
    const store = await stores.fresh();
    await expect(store.setIndex('nope', 'spbhid', 'k', 'v', 1000)).rejects.toThrow(/not served/);
  });
});

describe('redis store: session indexes while Redis is down', () => {
  it('throw StoreUnavailableError, and work again once Redis is back', async () => {
    const store = await stores.fresh();
    await store.setIndex('rooms', 'ufrag', 'u1', 'stream', 60_000);
    await redis.stop();
    try {
      await expect.poll(() => store.available()).toBe(false);
      await expect(store.setIndex('rooms', 'ufrag', 'u2', 'stream', 60_000)).rejects.toBeInstanceOf(StoreUnavailableError);
      await expect(store.getIndex('rooms', 'ufrag', 'u1')).rejects.toBeInstanceOf(StoreUnavailableError);
      await expect(store.deleteIndex('rooms', 'ufrag', 'u1')).rejects.toBeInstanceOf(StoreUnavailableError);
    } finally {
      await redis.restart();
    }
    await expect.poll(() => store.available(), { timeout: 10_000 }).toBe(true);
    // A redis-server without persistence came back empty: the entry is gone, writes work again.
    expect(await store.getIndex('rooms', 'ufrag', 'u1')).toBeUndefined();
    await store.setIndex('rooms', 'ufrag', 'u2', 'stream', 60_000);
    expect(await store.getIndex('rooms', 'ufrag', 'u2')).toBe('stream');
  });
});
