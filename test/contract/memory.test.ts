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
