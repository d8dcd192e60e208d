import { useMemo } from 'preact/hooks';
import { poolNouns } from '../format';
import type { PoolState } from '../store';

interface Hit {
  pool: string;
  id: string;
  serverId: string;
  state: string;
  kind: 'placement' | 'server';
}

/** Placements (rooms, streams, sticky keys) and servers across pools whose id contains the query. */
export function SearchResults({ pools, query }: { pools: readonly PoolState[]; query: string }) {
  const q = query.trim().toLowerCase();
  const { hits, total } = useMemo(() => {
    const hits: Hit[] = [];
    let total = 0;
    if (!q) return { hits, total };
    for (const p of pools) {
      for (const s of p.servers.values()) {
        if (!s.serverId.toLowerCase().includes(q)) continue;
        total++;
        if (hits.length < 100) hits.push({ pool: p.pool, id: s.serverId, serverId: s.serverId, state: s.health.status, kind: 'server' });
      }
      for (const x of p.placements.values()) {
        if (!x.id.toLowerCase().includes(q)) continue;
        total++;
        if (hits.length < 100) hits.push({ pool: p.pool, id: x.id, serverId: x.serverId, state: x.state, kind: 'placement' });
      }
    }
    return { hits, total };
    // placementsVersion changes are new pool objects, so `pools` covers them.
  }, [pools, q]);
  if (!q) return null;
  return (
    <section class="panel search-results" aria-labelledby="search-title" data-role="search-results">
      <header class="panel-head">
        <h2 id="search-title">
          “{query.trim()}”: {total} match{total === 1 ? '' : 'es'}
        </h2>
        {total > hits.length && <span class="muted">showing {hits.length}</span>}
      </header>
      {hits.length === 0 ? (
        <p class="empty">No placement or server id contains that.</p>
      ) : (
        <div class="table-wrap">
          <table class="hits">
            <thead>
              <tr>
                <th scope="col">Id</th>
                <th scope="col">Pool</th>
                <th scope="col">Server</th>
                <th scope="col">State</th>
              </tr>
            </thead>
            <tbody>
              {hits.map((h) => (
                <tr key={`${h.pool}\u0000${h.kind}\u0000${h.id}`} data-placement-id={h.kind === 'placement' ? h.id : undefined} data-pool={h.pool}>
                  <th scope="row" class="id">
                    {h.id}
                    <span class="sub">{h.kind === 'server' ? 'server' : poolNouns(h.pool).placement}</span>
                  </th>
                  <td>{h.pool}</td>
                  <td class="id">{h.serverId}</td>
                  <td>{h.state}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
