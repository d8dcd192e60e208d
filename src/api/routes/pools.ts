import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import { freeUnits, isPlaceable, usedUnits } from '../../core/capacity.js';
import type { StateStore } from '../../store/store.js';
import type { PoolSummary as PoolSummaryShape } from '../../dashboard/types.js';
import { AppError } from '../../errors.js';
import { ErrorBody, ServerView, serverView, sortById } from '../schemas.js';

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
// The schema and the shared type (src/dashboard/types.ts) describe the same answer.
const _sameShape: PoolSummaryShape = {} as PoolSummary;
void _sameShape;

/** One pool at a glance, from the store's local view (no I/O). */
export function poolSummary(store: StateStore, pool: string): PoolSummary {
  const summary: PoolSummary = { pool, servers: 0, healthy: 0, placeable: 0, capacity: 0, used: 0, free: 0, placements: store.countPlacements(pool) };
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

/** `GET /pools`: every pool's totals; `GET /pools/:pool/servers`: one pool's servers — for the dashboard and `switchboard status`. */
export const poolRoutes: FastifyPluginAsyncTypebox<{ store: StateStore; pools: readonly string[] }> = async (app, { store, pools }) => {
  app.get(
    '/pools',
    { schema: { tags: ['dashboard'], summary: 'Every pool: servers, healthy, capacity, used, free, placements', response: { 200: Type.Array(PoolSummary) } } },
    async () => pools.map((pool) => poolSummary(store, pool)),
  );

  app.get(
    '/pools/:pool/servers',
    {
      schema: {
        tags: ['dashboard'],
        summary: 'One pool’s servers (any pool: rooms, turn, origins, the HTTP pools), with their placement counts',
        params: Type.Object({ pool: Type.String({ minLength: 1, maxLength: 64 }) }),
        response: { 200: Type.Object({ servers: Type.Array(ServerView) }), 404: ErrorBody },
      },
    },
    async (req) => {
      const { pool } = req.params;
      if (!pools.includes(pool)) throw new AppError(404, 'unknown_pool', `pool: no pool ${pool}; pools: ${pools.join(', ')}`, { field: 'pool', reason: 'unknown pool' });
      const counts = new Map<string, number>();
      for (const p of store.listPlacements(pool)) counts.set(p.serverId, (counts.get(p.serverId) ?? 0) + 1);
      return { servers: sortById(store.listServers(pool)).map((s) => serverView(s, counts.get(s.id) ?? 0)) };
    },
  );
};
