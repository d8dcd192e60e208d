import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import { freeUnits, isPlaceable, usedUnits } from '../../core/capacity.js';
import type { StateStore } from '../../store/store.js';

export const PoolSummary = Type.Object({
  pool: Type.String({ description: 'Pool name: rooms, turn, ...' }),
  servers: Type.Integer({ description: 'Registered servers.' }),
  healthy: Type.Integer({ description: 'Servers whose health is healthy (whatever their admin state).' }),
  placeable: Type.Integer({ description: 'Servers that take new work: healthy and active.' }),
  capacity: Type.Number({ description: 'Sum of the servers’ capacity, in the pool’s units.' }),
  used: Type.Number({ description: 'Sum of max(reserved, reported) over the servers.' }),
  free: Type.Number({ description: 'Sum of free units over the placeable servers.' }),
  placements: Type.Integer({ description: 'Rooms (or streams, sticky keys) placed in the pool.' }),
});
export type PoolSummary = Static<typeof PoolSummary>;

/** One pool at a glance, from the store's local view (no I/O). */
export function poolSummary(store: StateStore, pool: string): PoolSummary {
  const summary: PoolSummary = { pool, servers: 0, healthy: 0, placeable: 0, capacity: 0, used: 0, free: 0, placements: store.listPlacements(pool).length };
  for (const s of store.listServers(pool)) {
    summary.servers++;
    if (s.health.status === 'healthy') summary.healthy++;
    summary.capacity += s.capacity;
    summary.used += usedUnits(s);
    if (isPlaceable(s)) {
      summary.placeable++;
      summary.free += Math.max(0, freeUnits(s));
    }
  }
  return summary;
}

/** `GET /pools`: every pool's totals, for the dashboard and `switchboard status`. */
export const poolRoutes: FastifyPluginAsyncTypebox<{ store: StateStore; pools: readonly string[] }> = async (app, { store, pools }) => {
  app.get(
    '/pools',
    { schema: { tags: ['dashboard'], summary: 'Every pool: servers, healthy, capacity, used, free, placements', response: { 200: Type.Array(PoolSummary) } } },
    async () => pools.map((pool) => poolSummary(store, pool)),
  );
};
