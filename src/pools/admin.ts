import type { Server } from '../core/model.js';
import { notFound } from '../errors.js';
import { AGENT_ATTR } from '../probes/agent-check.js';
import type { StateStore } from '../store/store.js';

/**
 * An operator's drain, maint or undrain of a server, in any pool. The operator's word holds from
 * then on: the server's agent may no longer end this state (its `ready` ends only a drain or maint
 * it set itself; probes/agent-check.ts). Undefined when the server is not registered.
 */
export async function operatorAdminState(store: StateStore, pool: string, id: string, state: Server['adminState']): Promise<Server | undefined> {
  if (store.getServer(pool, id)?.attributes[AGENT_ATTR.admin]) {
    await store.patchServer(pool, id, { attributes: { [AGENT_ATTR.admin]: '' } });
  }
  return store.setAdminState(pool, id, state);
}

/** What each pool does when an operator drains or removes one of its servers (the dashboard's buttons). */
export interface PoolOperations {
  setAdminState(id: string, state: Server['adminState']): Promise<Server>;
  /** Removes the server the pool's way (rooms: released and their owners notified). */
  deregister(id: string): Promise<Server>;
}

/** Drain, undrain and deregister for every pool by name, each through its own service. */
export class PoolAdmin {
  private readonly ops = new Map<string, PoolOperations>();

  constructor(private readonly store: StateStore) {}

  /** A pool whose servers are plain store records: drain through the store, removal by `deregister`. */
  add(pool: string, deregister: (id: string) => Promise<Server>, setAdminState?: PoolOperations['setAdminState']): this {
    this.ops.set(pool, {
      deregister,
      setAdminState:
        setAdminState ??
        (async (id, state) => {
          const server = await operatorAdminState(this.store, pool, id, state);
          if (!server) throw notFound(`server in pool ${pool}`, 'params.id', id);
          return server;
        }),
    });
    return this;
  }

  get pools(): string[] {
    return [...this.ops.keys()];
  }

  for(pool: string): PoolOperations | undefined {
    return this.ops.get(pool);
  }
}
