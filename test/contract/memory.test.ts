import { MemoryStore } from '../../src/store/memory.js';
import { storeContract } from './store.contract.js';

storeContract('memory', {
  open: async () => new MemoryStore(),
  peer: async (store) => store,
});
