import { apiUrl, fetchActivity, fetchStatsHistory } from './api';
import { MAX_ACTIVITY, type DashboardStore } from './store';
import type { Activity, PlacementView, ServerView, Snapshot, StatsSample } from './types';

/**
 * Keeps the store in step with `GET /events`. The browser's EventSource reconnects by itself
 * (with Last-Event-ID, so missed events are replayed); a stream the server refused (503: too
 * many clients) is opened again after a pause. Each snapshot (first load, a server restart, a
 * burst) also reloads the activity log and chart history, which a snapshot does not carry.
 */
export function connect(store: DashboardStore): () => void {
  let es: EventSource | undefined;
  let retry: ReturnType<typeof setTimeout> | undefined;
  let lastBackfill = 0;
  let stopped = false;

  const backfill = () => {
    const now = Date.now();
    if (now - lastBackfill < 5_000) return;
    lastBackfill = now;
    fetchActivity(MAX_ACTIVITY)
      .then((a) => a && store.mergeActivity(a.entries))
      .catch(() => undefined);
    fetchStatsHistory()
      .then((h) => h && store.setStatsHistory(h))
      .catch(() => undefined);
  };

  const parse = <T>(e: Event): T | undefined => {
    try {
      return JSON.parse((e as MessageEvent<string>).data) as T;
    } catch {
      return undefined;
    }
  };

  const open = () => {
    if (stopped) return;
    es = new EventSource(apiUrl('/events'));
    es.addEventListener('open', () => store.setConnection('live'));
    es.addEventListener('error', () => {
      if (!es) return;
      if (es.readyState === EventSource.CLOSED) {
        store.setConnection('offline');
        es = undefined;
        retry = setTimeout(open, 5_000);
      } else {
        store.setConnection('reconnecting');
      }
    });
    es.addEventListener('snapshot', (e) => {
      const snap = parse<Snapshot>(e);
      if (!snap) return;
      store.applySnapshot(snap);
      store.setConnection('live');
      backfill();
    });
    es.addEventListener('server', (e) => {
      const d = parse<{ pool: string; server: ServerView }>(e);
      if (d) store.upsertServer(d.pool, d.server);
    });
    es.addEventListener('server-removed', (e) => {
      const d = parse<{ pool: string; serverId: string }>(e);
      if (d) store.removeServer(d.pool, d.serverId);
    });
    es.addEventListener('placement', (e) => {
      const d = parse<{ pool: string; placement: PlacementView }>(e);
      if (d) store.setPlacement(d.pool, d.placement, false);
    });
    es.addEventListener('placement-removed', (e) => {
      const d = parse<{ pool: string; placement: PlacementView }>(e);
      if (d) store.setPlacement(d.pool, d.placement, true);
    });
    es.addEventListener('activity', (e) => {
      const d = parse<Activity>(e);
      if (d) store.addActivity(d);
    });
    es.addEventListener('stats', (e) => {
      const d = parse<StatsSample>(e);
      if (d) store.addStats(d);
    });
  };

  open();
  return () => {
    stopped = true;
    clearTimeout(retry);
    es?.close();
  };
}
