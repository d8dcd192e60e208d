import { Fragment } from 'preact';
import { memo } from 'preact/compat';
import { useMemo, useState } from 'preact/hooks';
import type { AdminAction } from '../api';
import { age, isBounded, loadLevel, num, pct, poolNouns } from '../format';
import type { PoolState } from '../store';
import type { PlacementView, ServerView } from '../types';

export type Act = (pool: string, server: ServerView, action: AdminAction) => void;

interface Props {
  pool: PoolState;
  now: number;
  act: Act;
  /** `${pool}\u0000${serverId}` of the rows with an action in flight. */
  pending: ReadonlySet<string>;
}

const byId = (a: ServerView, b: ServerView) => (a.serverId < b.serverId ? -1 : a.serverId > b.serverId ? 1 : 0);

/** Totals of one pool, from its servers (the stream carries servers, not summaries). */
export function poolTotals(pool: PoolState) {
  let healthy = 0;
  let placeable = 0;
  let capacity = 0;
  let used = 0;
  let free = 0;
  let bounded = false;
  for (const s of pool.servers.values()) {
    if (s.healthy) healthy++;
    if (s.healthy && s.adminState === 'active') {
      placeable++;
      if (isBounded(s.capacity)) free += Math.max(0, s.free);
    }
    if (isBounded(s.capacity)) {
      bounded = true;
      capacity += s.capacity;
      used += s.used;
    }
  }
  return { servers: pool.servers.size, healthy, placeable, capacity, used, free, bounded, placements: pool.placements.size };
}

/** One pool: its totals and a row per server. The same component for every pool. */
export const PoolPanel = memo(function PoolPanel({ pool, now, act, pending }: Props) {
  const nouns = poolNouns(pool.pool);
  const servers = useMemo(() => [...pool.servers.values()].sort(byId), [pool.servers]);
  // Placements per server, from the placement list (kept current by the stream).
  const perServer = useMemo(() => {
    const m = new Map<string, PlacementView[]>();
    for (const p of pool.placements.values()) {
      let list = m.get(p.serverId);
      if (!list) m.set(p.serverId, (list = []));
      list.push(p);
    }
    return m;
  }, [pool.placements, pool.placementsVersion]);
  const totals = useMemo(() => poolTotals(pool), [pool]);
  const [collapsed, setCollapsed] = useState(false);
  const [open, setOpen] = useState<ReadonlySet<string>>(new Set());
  const toggle = (id: string) =>
    setOpen((prev) => {
      const next = new Set(prev);
      if (!next.delete(id)) next.add(id);
      return next;
    });
  const unhealthy = totals.servers - totals.healthy;
  const usedPct = pct(totals.used, totals.capacity);

  return (
    <section class={`panel pool ${totals.servers === 0 ? 'pool-empty' : ''}`} data-pool={pool.pool} aria-labelledby={`pool-${pool.pool}`}>
      <header class="panel-head">
        <button type="button" class="collapse" aria-expanded={!collapsed} aria-controls={`pool-body-${pool.pool}`} onClick={() => setCollapsed(!collapsed)}>
          <span class="chevron" aria-hidden="true">
            {collapsed ? '▸' : '▾'}
          </span>
          <h2 id={`pool-${pool.pool}`}>{pool.pool}</h2>
        </button>
        <dl class="pool-stats">
          <div>
            <dt>servers</dt>
            <dd>{totals.servers}</dd>
          </div>
          <div class={unhealthy > 0 ? 'bad' : ''}>
            <dt>healthy</dt>
            <dd>
              {totals.healthy}/{totals.servers}
            </dd>
          </div>
          <div>
            <dt>placeable</dt>
            <dd>{totals.placeable}</dd>
          </div>
          <div>
            <dt>{nouns.placements}</dt>
            <dd data-stat="placements">{num(totals.placements)}</dd>
          </div>
          {totals.bounded && (
            <div class="pool-capacity">
              <dt>{nouns.units}</dt>
              <dd>
                <span class={`bar bar-${loadLevel(usedPct)}`} title={`${num(totals.used)} used of ${num(totals.capacity)}`}>
                  <span style={{ width: `${usedPct}%` }} />
                </span>
                {num(totals.used)} / {num(totals.capacity)} · {num(totals.free)} free
              </dd>
            </div>
          )}
        </dl>
      </header>
      {!collapsed && (
        <div id={`pool-body-${pool.pool}`}>
          {servers.length === 0 ? (
            <p class="empty">No servers registered in {pool.pool}.</p>
          ) : (
            <div class="table-wrap">
              <table class="servers">
                <thead>
                  <tr>
                    <th scope="col">Server · region</th>
                    <th scope="col">Health · admin</th>
                    <th scope="col" class="col-capacity" title={`in ${nouns.units}`}>
                      Capacity
                    </th>
                    <th scope="col" title="reported load and weight">Load · weight</th>
                    <th scope="col" class="num">
                      Heartbeat
                    </th>
                    <th scope="col" class="num">
                      {nouns.placements}
                    </th>
                    <th scope="col" class="col-actions">
                      <span class="sr-only">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {servers.map((s) => {
                    const list = perServer.get(s.serverId);
                    const count = pool.placementsTruncated ? s.placements : (list?.length ?? 0);
                    const expanded = open.has(s.serverId);
                    return (
                      <Fragment key={s.serverId}>
                        <ServerRow
                          pool={pool.pool}
                          server={s}
                          now={now}
                          count={count}
                          expanded={expanded}
                          toggle={toggle}
                          act={act}
                          busy={pending.has(`${pool.pool}\u0000${s.serverId}`)}
                        />
                        {expanded && <PlacementsRow list={list ?? []} noun={nouns.placements} />}
                      </Fragment>
                    );
                  })}
                </tbody>
              </table>
            </div>
          )}
          {pool.placementsTruncated && <p class="note">Only the first placements are listed; counts per server come from the servers.</p>}
        </div>
      )}
    </section>
  );
});

function healthClass(status: string): string {
  return status === 'healthy' ? 'ok' : status === 'unhealthy' ? 'bad' : 'unknown';
}

function ServerRow(props: {
  pool: string;
  server: ServerView;
  now: number;
  count: number;
  expanded: boolean;
  toggle: (id: string) => void;
  act: Act;
  busy: boolean;
}) {
  const { pool, server: s, now, count, expanded, toggle, act, busy } = props;
  const nouns = poolNouns(pool);
  const status = s.health.status;
  const bounded = isBounded(s.capacity);
  const usedPct = pct(s.used, s.capacity);
  const reported = Object.entries(s.reported ?? {});
  const inflight = s.reported?.inflight ?? s.reported?.inFlight ?? s.reported?.connections;
  const healthTitle = [
    `${status} since ${new Date(s.health.since).toLocaleString()}`,
    `last check: ${s.health.lastCheck ? new Date(s.health.lastCheck).toLocaleString() : 'never'}`,
    `successes ${s.health.successes}, failures ${s.health.failures}`,
    s.health.lastError ? `last error: ${s.health.lastError}` : '',
  ]
    .filter(Boolean)
    .join('\n');
  return (
    <tr data-server-id={s.serverId} data-pool={pool} data-health={status} data-admin={s.adminState} class={`row-${healthClass(status)} admin-${s.adminState}`}>
      <th scope="row" class="server-id">
        <span class="id">{s.serverId}</span>
        <span class="sub" title={`${s.kind} at ${s.serviceUrl}${s.region ? `, region ${s.region}` : ''}`}>
          {s.region && (
            <>
              <span class="region" data-role="region">
                {s.region}
              </span>
              {' · '}
            </>
          )}
          {s.serviceUrl.replace(/^https?:\/\//, '')}
        </span>
      </th>
      <td class="health" title={healthTitle} data-label="Health · admin">
        <span class="badges">
          <span class={`badge badge-${healthClass(status)}`} data-role="health">
            <span class="dot" aria-hidden="true" />
            {status}
          </span>
          <span class={`badge badge-admin-${s.adminState}`} data-role="admin" title="admin state">
            {s.adminState}
          </span>
        </span>
        {status !== 'healthy' && s.health.lastError ? (
          <span class="sub reason" data-role="reason">
            {s.health.lastError}
          </span>
        ) : (
          <span class="sub">
            {s.health.latencyMs !== undefined ? `${num(s.health.latencyMs)} ms · ` : ''}
            {age(s.health.since, now)}
          </span>
        )}
      </td>
      <td class="col-capacity" data-label={`Capacity (${nouns.units})`}>
        {bounded ? (
          <div class="capacity" title={`${s.used} ${nouns.units} used (reserved ${s.reserved}), ${s.free} free of ${s.capacity}`}>
            <span class={`bar bar-${loadLevel(usedPct)}`}>
              <span style={{ width: `${usedPct}%` }} />
            </span>
            <span class="sub">
              {num(s.used)} / {num(s.capacity)} · {num(s.free)} free
            </span>
          </div>
        ) : (
          <span class="sub">
            {inflight !== undefined ? `${num(inflight)} in flight · ` : ''}
            {typeof s.attributes?.maxconn === 'number' && s.attributes.maxconn > 0 ? `maxconn ${num(s.attributes.maxconn)}` : 'no unit limit'}
          </span>
        )}
      </td>
      <td class="reported" data-label="Load · weight">
        {reported.map(([k, v]) => (
          <span class="chip" key={k}>
            {k} <b>{num(v)}</b>
          </span>
        ))}
        <span class="chip chip-weight" data-role="weight" title="weight">
          weight <b>{num(s.weight)}</b>
        </span>
      </td>
      <td class="num heartbeat" title={new Date(s.lastHeartbeat).toLocaleString()} data-label="Heartbeat">
        {age(s.lastHeartbeat, now)}
      </td>
      <td class="num count" data-label={nouns.placements}>
        <button type="button" class="link" aria-expanded={expanded} disabled={count === 0 && !expanded} onClick={() => toggle(s.serverId)} data-role="placements">
          {num(count)}
        </button>
      </td>
      <td class="col-actions">
        <div class="actions">
          {s.adminState === 'active' ? (
            <button type="button" class="btn btn-sm" data-action="drain" disabled={busy} onClick={() => act(pool, s, 'drain')}>
              Drain
            </button>
          ) : (
            <button type="button" class="btn btn-sm" data-action="undrain" disabled={busy} onClick={() => act(pool, s, 'undrain')}>
              Undrain
            </button>
          )}
          <button type="button" class="btn btn-sm btn-danger-outline" data-action="deregister" disabled={busy} onClick={() => act(pool, s, 'deregister')}>
            Deregister
          </button>
        </div>
      </td>
    </tr>
  );
}

function PlacementsRow({ list, noun }: { list: PlacementView[]; noun: string }) {
  const shown = list.slice(0, 200);
  return (
    <tr class="placements-row">
      <td colSpan={7}>
        {list.length === 0 ? (
          <span class="muted">No {noun}.</span>
        ) : (
          <ul class="placement-list">
            {shown.map((p) => (
              <li key={p.id} class={`chip state-${p.state}`} data-placement-id={p.id}>
                {p.id}
                {p.state !== 'ready' && <small> {p.state}</small>}
              </li>
            ))}
            {list.length > shown.length && <li class="muted">… {list.length - shown.length} more (search by id)</li>}
          </ul>
        )}
      </td>
    </tr>
  );
}
