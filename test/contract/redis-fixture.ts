import { afterEach } from 'vitest';
import { RedisStore, type RedisStoreOptions } from '../../src/store/redis/index.js';
import type { RedisConnectionConfig } from '../../src/store/redis/connection.js';
import type { StoreFixture } from './store.contract.js';

/**
 * Redis stores for one test file, whatever the Redis shape: each `open()` gets a fresh key prefix
 * (an empty state), `peer()` a second instance on the same prefix; all are closed after each test.
 */
export function redisStores(connection: () => RedisConnectionConfig, label: string) {
  let n = 0;
  const open: RedisStore[] = [];
  const prefixes = new Map<RedisStore, string>();
  afterEach(async () => {
    await Promise.all(open.splice(0).map((s) => s.close()));
  });

  async function connect(prefix: string, options: Partial<RedisStoreOptions> = {}): Promise<RedisStore> {
    const store = new RedisStore({ connection: connection(), prefix, pools: ['rooms', 'other-pool'], ...options });
    await store.start();
    open.push(store);
    prefixes.set(store, prefix);
    return store;
  }

  return {
    /** A store on a fresh, empty prefix. */
    fresh: (options: Partial<RedisStoreOptions> = {}) => connect(`${label}${++n}`, options),
    /** Another instance sharing `store`'s state. */
    peer: (store: RedisStore, options: Partial<RedisStoreOptions> = {}) => connect(prefixes.get(store)!, options),
    fixture: (): StoreFixture => ({
      open: () => connect(`${label}${++n}`),
      peer: (store) => connect(prefixes.get(store as RedisStore)!),
    }),
  };
}
