import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ActionError, adminAction, Cancelled, type AdminAction } from './api';
import { Charts } from './components/Charts';
import { DialogHost, type DialogRequest } from './components/Dialogs';
import { EventLog } from './components/EventLog';
import { PoolPanel, type Act } from './components/PoolPanel';
import { SearchResults } from './components/Search';
import { num, poolNouns } from './format';
import type { DashboardState, DashboardStore } from './store';
import type { Connection, ServerView } from './types';

function useStore(store: DashboardStore): DashboardState {
  const [state, setState] = useState(store.get());
  useEffect(() => store.subscribe(() => setState(store.get())), [store]);
  return state;
}

/** A clock for heartbeat ages: ticks every second. */
function useNow(): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, []);
  return now;
}

interface Notice {
  id: number;
  level: 'info' | 'error';
  text: string;
}

const connectionText: Record<Connection, string> = {
  connecting: 'connecting',
  live: 'live',
  reconnecting: 'reconnecting',
  offline: 'offline',
};

const verbs: Record<AdminAction, string> = { drain: 'drained', undrain: 'undrained', deregister: 'deregistered' };

export function App({ store }: { store: DashboardStore }) {
  const state = useStore(store);
  const now = useNow();
  const [query, setQuery] = useState('');
  const [dialog, setDialog] = useState<DialogRequest | null>(null);
  const [pending, setPending] = useState<ReadonlySet<string>>(new Set());
  const [notices, setNotices] = useState<Notice[]>([]);
  const noticeId = useRef(0);

  const notify = useCallback((level: Notice['level'], text: string) => {
    const id = ++noticeId.current;
    setNotices((n) => [...n.slice(-3), { id, level, text }]);
    setTimeout(() => setNotices((n) => n.filter((x) => x.id !== id)), level === 'error' ? 10_000 : 5_000);
  }, []);

  const ask = <T,>(make: (resolve: (v: T) => void) => DialogRequest) => new Promise<T>((resolve) => setDialog(make(resolve)));

  const act: Act = useCallback(
    (pool: string, server: ServerView, action: AdminAction) => {
      void (async () => {
        const id = server.serverId;
        if (action !== 'undrain') {
          const noun = poolNouns(pool).placements;
          const ok = await ask<boolean>((resolve) => ({
            type: 'confirm',
            title: action === 'drain' ? `Drain ${id}?` : `Deregister ${id}?`,
            body:
              action === 'drain' ? (
                <p>
                  <b>{id}</b> takes no new {noun}; the {num(server.placements)} it holds stay until they end.
                </p>
              ) : (
                <p>
                  <b>{id}</b> leaves the {pool} pool now. Its {num(server.placements)} {noun} are released and their owners notified. A media
                  server that registers again comes back.
                </p>
              ),
            confirmLabel: action === 'drain' ? 'Drain' : 'Deregister',
            danger: action === 'deregister',
            resolve,
          }));
          if (!ok) return;
        }
        const key = `${pool}\u0000${id}`;
        setPending((p) => new Set(p).add(key));
        try {
          const view = await adminAction(pool, id, action, (reason) => ask<string | null>((resolve) => ({ type: 'token', reason, resolve })));
          if (action === 'deregister') store.removeServer(pool, id);
          else store.upsertServer(pool, view);
          notify('info', `${id} ${verbs[action]}`);
        } catch (err) {
          if (err instanceof Cancelled) return;
          const text = err instanceof ActionError ? err.message : String(err);
          notify('error', `${id}: ${action} failed: ${text}`);
        } finally {
          setPending((p) => {
            const next = new Set(p);
            next.delete(key);
            return next;
          });
        }
      })();
    },
    [store, notify],
  );

  const totals = useMemo(() => {
    let servers = 0;
    let healthy = 0;
    let drained = 0;
    let placements = 0;
    for (const p of state.pools) {
      placements += p.placements.size;
      for (const s of p.servers.values()) {
        servers++;
        if (s.healthy) healthy++;
        if (s.adminState !== 'active') drained++;
      }
    }
    return { servers, healthy, unhealthy: servers - healthy, drained, placements };
  }, [state.pools]);

  useEffect(() => {
    document.title = totals.unhealthy > 0 ? `(${totals.unhealthy} unhealthy) Switchboard` : 'Switchboard';
  }, [totals.unhealthy]);

  return (
    <>
      <header class="top">
        <div class="brand">
          <svg viewBox="0 0 16 16" width="22" height="22" aria-hidden="true">
            <rect width="16" height="16" rx="3.5" fill="currentColor" />
            <path d="M4 5h8M4 8h5M4 11h7" stroke="var(--bg)" stroke-width="1.6" stroke-linecap="round" />
          </svg>
          <h1>Switchboard</h1>
          <span class={`conn conn-${state.connection}`} data-connection={state.connection} role="status" title={state.snapshotAt ? `snapshot at ${state.snapshotAt}` : ''}>
            <span class="dot" aria-hidden="true" />
            {connectionText[state.connection]}
          </span>
        </div>
        <dl class="totals">
          <div>
            <dt>pools</dt>
            <dd>{state.pools.length}</dd>
          </div>
          <div>
            <dt>servers</dt>
            <dd data-total="servers">{totals.servers}</dd>
          </div>
          <div>
            <dt>healthy</dt>
            <dd class="ok">{totals.healthy}</dd>
          </div>
          <div>
            <dt>unhealthy</dt>
            <dd class={totals.unhealthy > 0 ? 'bad' : 'muted'} data-total="unhealthy">
              {totals.unhealthy}
            </dd>
          </div>
          <div>
            <dt>drain / maint</dt>
            <dd class={totals.drained > 0 ? 'warn' : 'muted'}>{totals.drained}</dd>
          </div>
          <div>
            <dt>placements</dt>
            <dd>{num(totals.placements)}</dd>
          </div>
        </dl>
        <label class="search">
          <span class="sr-only">Search placements and servers by id</span>
          <input
            type="search"
            placeholder="Find a room, stream or server id…"
            value={query}
            onInput={(e) => setQuery((e.target as HTMLInputElement).value)}
            data-role="search"
            autocomplete="off"
            spellcheck={false}
          />
        </label>
      </header>
      <main class="layout">
        <div class="main-col">
          <SearchResults pools={state.pools} query={query} />
          <Charts samples={state.stats} available={state.statsAvailable} />
          {state.pools.length === 0 && <p class="empty panel">{state.connection === 'live' ? 'No pools.' : 'Connecting to Switchboard…'}</p>}
          {state.pools.map((p) => (
            <PoolPanel key={p.pool} pool={p} now={now} act={act} pending={pending} />
          ))}
        </div>
        <aside class="side-col">
          <EventLog entries={state.activity} />
        </aside>
      </main>
      <div class="notices" aria-live="polite">
        {notices.map((n) => (
          <div key={n.id} class={`notice notice-${n.level}`} role={n.level === 'error' ? 'alert' : 'status'} data-notice={n.level}>
            {n.text}
          </div>
        ))}
      </div>
      <DialogHost request={dialog} done={() => setDialog(null)} />
    </>
  );
}
