import { afterAll, afterEach, beforeAll } from 'vitest';
import { RedisStore } from '../../src/store/redis/index.js';
import type { StateStore } from '../../src/store/store.js';
import { RedisServer } from '../helpers/redis.js';
import { storeContract } from './store.contract.js';

let redis: RedisServer;
let n = 0;
const open: StateStore[] = [];
const prefixes = new Map<StateStore, string>();

beforeAll(async () => {
  redis = await RedisServer.start();
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});
afterAll(async () => {
  await redis?.stop();
});

async function connect(prefix: string): Promise<StateStore> {
  const store = new RedisStore({ connection: { mode: 'standalone', url: redis.url }, prefix, pools: ['rooms', 'other-pool'] });
  await store.start();
  open.push(store);
  prefixes.set(store, prefix);
  return store;
}

storeContract('redis', {
  // A fresh key prefix per store gives every test (and every property run) an empty state.
  open: () => connect(`sbtest${++n}`),
  peer: (store) => connect(prefixes.get(store)!),
});
