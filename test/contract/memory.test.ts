import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../../src/store/memory.js';
import { pendingContract } from './pending.contract.js';
import { storeContract } from './store.contract.js';

storeContract('memory', {
  open: async () => new MemoryStore(),
  peer: async (store) => store,
});

pendingContract('memory', {
  open: async () => new MemoryStore(),
  peer: async (store) => store,
});

describe('memory store: session index sweep', () => {
  it('drops expired entries nobody reads again, and stops its timer when empty', async () => {
    const store = new MemoryStore();
    const inner = store as unknown as { indexes: Map<string, unknown>; sweeper: unknown };
    for (let i = 0; i < 100; i++) await store.setIndex('rooms', 'spbhid', `k${i}`, 'v', 50);
    await store.setIndex('rooms', 'ufrag', 'kept', 'v', 60_000);
    expect(inner.indexes.size).toBe(101);
    await expect.poll(() => inner.indexes.size, { timeout: 3000, interval: 100 }).toBe(1);
    await store.deleteIndex('rooms', 'ufrag', 'kept');
    await expect.poll(() => inner.sweeper, { timeout: 3000, interval: 100 }).toBeUndefined();
    await store.close();
  });
});
