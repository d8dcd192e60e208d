import type { Activity, Connection, PlacementView, ServerView, Snapshot, StatsHistory, StatsSample } from './types';

/** One pool as the page knows it. Replaced (a new object) whenever anything in it changes. */
export interface PoolState {
  pool: string;
  servers: ReadonlyMap<string, ServerView>;
  /** Mutated in place (it may hold thousands); `placementsVersion` tells a change. */
  placements: Map<string, PlacementView>;
  placementsVersion: number;
  placementsTruncated: boolean;
}

export interface DashboardState {
  connection: Connection;
  /** Pools in the order Switchboard gives them. */
  pools: readonly PoolState[];
  /** Oldest first, at most MAX_ACTIVITY. */
  activity: readonly Activity[];
  stats: readonly StatsSample[];
  statsInterval: number;
  /** False until `/stats/history` answered (404 on a Switchboard without it). */
  statsAvailable: boolean;
  snapshotAt: string | null;
  version: number;
}

export const MAX_ACTIVITY = 500;
const STATS_WINDOW_MS = 15 * 60_000;

const activityKey = (a: Activity) => `${a.at}|${a.pool}|${a.kind}|${a.serverId ?? ''}|${a.placementId ?? ''}|${a.message}`;

/**
 * The page's state, fed by the event stream and the two JSON reads, outside Preact so a burst of
 * events costs one render per animation frame, not one per event.
 */
export class DashboardStore {
  private state: DashboardState = {
    connection: 'connecting',
    pools: [],
    activity: [],
    stats: [],
    statsInterval: 5,
    statsAvailable: false,
    snapshotAt: null,
    version: 0,
  };
  private readonly listeners = new Set<() => void>();
  private scheduled = false;

  get(): DashboardState {
    return this.state;
  }

  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private set(patch: Partial<DashboardState>): void {
    this.state = { ...this.state, ...patch, version: this.state.version + 1 };
    if (this.scheduled) return;
    this.scheduled = true;
    const run = () => {
      this.scheduled = false;
      for (const fn of this.listeners) fn();
    };
    // One render per frame; a hidden tab (no frames) still catches up within a second.
    if (typeof requestAnimationFrame === 'function' && document.visibilityState === 'visible') requestAnimationFrame(run);
    else setTimeout(run, 250);
  }

  setConnection(connection: Connection): void {
    if (connection !== this.state.connection) this.set({ connection });
  }

  applySnapshot(snap: Snapshot): void {
    const pools = snap.pools.map<PoolState>((p) => ({
      pool: p.pool,
      servers: new Map(p.servers.map((s) => [s.serverId, s])),
      placements: new Map((p.placements ?? []).map((x) => [x.id, x])),
      placementsVersion: 0,
      placementsTruncated: p.placementsTruncated === true,
    }));
    this.set({ pools, snapshotAt: snap.at });
  }

  private updatePool(name: string, fn: (p: PoolState) => PoolState): void {
    let found = false;
    const pools = this.state.pools.map((p) => {
      if (p.pool !== name) return p;
      found = true;
      return fn(p);
    });
    if (!found) {
      // A pool the snapshot did not name (added at run time): shown after the others.
      const fresh: PoolState = { pool: name, servers: new Map(), placements: new Map(), placementsVersion: 0, placementsTruncated: false };
      pools.push(fn(fresh));
    }
    this.set({ pools });
  }

  upsertServer(pool: string, server: ServerView): void {
    this.updatePool(pool, (p) => {
      const servers = new Map(p.servers);
      servers.set(server.serverId, server);
      return { ...p, servers };
    });
  }

  removeServer(pool: string, serverId: string): void {
    this.updatePool(pool, (p) => {
      const servers = new Map(p.servers);
      servers.delete(serverId);
      for (const [id, x] of p.placements) if (x.serverId === serverId) p.placements.delete(id);
      return { ...p, servers, placementsVersion: p.placementsVersion + 1 };
    });
  }

  setPlacement(pool: string, placement: PlacementView, removed: boolean): void {
    this.updatePool(pool, (p) => {
      if (removed) p.placements.delete(placement.id);
      else p.placements.set(placement.id, placement);
      return { ...p, placementsVersion: p.placementsVersion + 1 };
    });
  }

  /** Entries from `/activity` (oldest first) merged with what the stream already brought. */
  mergeActivity(entries: readonly Activity[]): void {
    const seen = new Set<string>();
    const merged: Activity[] = [];
    for (const a of [...entries, ...this.state.activity]) {
      const key = activityKey(a);
      if (seen.has(key)) continue;
      seen.add(key);
      merged.push(a);
    }
    merged.sort((x, y) => (x.at < y.at ? -1 : x.at > y.at ? 1 : 0));
    this.set({ activity: merged.slice(-MAX_ACTIVITY) });
  }

  addActivity(entry: Activity): void {
    const activity = [...this.state.activity, entry];
    this.set({ activity: activity.length > MAX_ACTIVITY ? activity.slice(-MAX_ACTIVITY) : activity });
  }

  setStatsHistory(history: StatsHistory): void {
    const byAt = new Map<string, StatsSample>();
    for (const s of [...history.samples, ...this.state.stats]) byAt.set(s.at, s);
    this.set({ stats: trim([...byAt.values()]), statsInterval: history.intervalSeconds || 5, statsAvailable: true });
  }

  addStats(sample: StatsSample): void {
    if (this.state.stats.some((s) => s.at === sample.at)) return;
    this.set({ stats: trim([...this.state.stats, sample]), statsAvailable: true });
  }
}

function trim(samples: StatsSample[]): StatsSample[] {
  samples.sort((x, y) => Date.parse(x.at) - Date.parse(y.at));
  const last = samples.at(-1);
  if (!last) return samples;
  const from = Date.parse(last.at) - STATS_WINDOW_MS;
  return samples.filter((s) => Date.parse(s.at) >= from);
}
