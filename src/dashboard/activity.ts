import { readWhy, whyText } from '../core/explain.js';
import type { Placement, Server } from '../core/model.js';
import type { StoreEvent } from '../store/store.js';
import type { ActivityEntry } from './types.js';

export type { ActivityEntry } from './types.js';

/** What a placement is called in a pool, for the log's sentences. */
const NOUN: Record<string, string> = { rooms: 'room', origins: 'stream', turn: 'allocation' };
const noun = (pool: string) => NOUN[pool] ?? 'sticky key';

/** How long a release may still turn out to be a loss (its server removed right after). */
const RECENT_MS = 2_000;

/** What most changes mean for the log (shared; never added to). */
const NOTHING: ActivityEntry[] = [];

interface Known {
  epoch: string;
  health: Server['health']['status'];
  admin: Server['adminState'];
}

/**
 * Turns the store's changes into the operator's event log: registered, removed, health flips (with
 * the probe's reason), drains, placements made, released, lost with their server and placed again.
 * It compares each change with what it saw before, so it must see every change (it listens to the
 * store directly, before `GET /events` coalesces them); after a store resync it takes the store's
 * state as the new baseline without logging it. Pure apart from the clock it is given.
 */
export class ActivityLog {
  private readonly servers = new Map<string, Known>();
  /** Placements that are ready, by `pool\0id` → server. */
  private readonly placements = new Map<string, string>();
  /** Recently released placements (`pool\0id` → server), to say "placed again" (bounded). */
  private readonly released = new Map<string, string>();
  private ring: ActivityEntry[] = [];
  /**
   * Releases of the last moments by `pool\0server`, oldest first with their time (ms), told again
   * as losses if the server goes. In time order, so what is too old is always at the front: each
   * release costs O(1) amortised, not a scan (a burst of thousands of room-closed calls used to
   * spend most of the process's CPU here).
   */
  private readonly recentReleases = new Map<string, { at: number; entry: ActivityEntry }[]>();

  constructor(
    private readonly capacity = 500,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes the store's current state as known, without logging it (start, resync). */
  baseline(pool: string, servers: readonly Server[], placements: readonly Placement[]): void {
    for (const key of [...this.servers.keys()]) if (key.startsWith(`${pool}\u0000`)) this.servers.delete(key);
    for (const key of [...this.placements.keys()]) if (key.startsWith(`${pool}\u0000`)) this.placements.delete(key);
    for (const s of servers) this.servers.set(`${pool}\u0000${s.id}`, { epoch: s.epoch, health: s.health.status, admin: s.adminState });
    for (const p of placements) if (p.state === 'ready') this.placements.set(`${pool}\u0000${p.id}`, p.serverId);
  }

  /** The entries a change means (often none: a heartbeat, a load report), also kept in the log. */
  observe(event: StoreEvent, server?: (pool: string, id: string) => Server | undefined): ActivityEntry[] {
    const out = this.describe(event, server);
    for (const e of out) this.ring.push(e);
    if (this.ring.length > this.capacity + 100) this.ring = this.ring.slice(this.ring.length - this.capacity);
    return out;
  }

  /** The last `limit` entries, oldest first. */
  entries(limit = this.capacity): ActivityEntry[] {
    const start = Math.max(0, this.ring.length - Math.min(limit, this.capacity));
    return this.ring.slice(start);
  }

  private entry(e: Omit<ActivityEntry, 'at'>): ActivityEntry {
    return { at: new Date(this.now()).toISOString(), ...e };
  }

  private describe(event: StoreEvent, lookup?: (pool: string, id: string) => Server | undefined): ActivityEntry[] {
    switch (event.type) {
      case 'server':
        return this.server(event.pool, event.server);
      case 'server-removed': {
        const key = `${event.pool}\u0000${event.id}`;
        if (!this.servers.delete(key)) return [];
        // A deregistration releases the server's placements just before it removes the server:
        // those were lost with it, not closed. The entries are still on their way (the event
        // stream sends them on its next flush), so they are corrected in place.
        const recent = this.recentReleases.get(key);
        this.recentReleases.delete(key);
        const since = this.now() - RECENT_MS;
        for (const { at, entry: e } of recent ?? []) {
          if (at < since) continue;
          e.level = 'warn';
          e.message = `${noun(event.pool)} ${e.placementId} lost with ${event.id}`;
        }
        return [this.entry({ pool: event.pool, serverId: event.id, kind: 'removed', level: 'warn', message: `${event.id} removed from ${event.pool}` })];
      }
      case 'placement':
        return this.placement(event.pool, event.placement);
      case 'placement-removed': {
        const p = event.placement;
        const key = `${event.pool}\u0000${p.id}`;
        if (!this.placements.delete(key)) return [];
        this.remember(key, p.serverId);
        const host = lookup?.(event.pool, p.serverId);
        const lost = !host || host.health.status === 'unhealthy';
        const entry = this.entry({
          pool: event.pool,
          serverId: p.serverId,
          placementId: p.id,
          kind: 'released',
          level: lost ? 'warn' : 'info',
          message: lost ? `${noun(event.pool)} ${p.id} lost with ${p.serverId}` : `${noun(event.pool)} ${p.id} released from ${p.serverId}`,
        });
        if (!lost) this.noteRelease(`${event.pool}\u0000${p.serverId}`, entry);
        return [entry];
      }
      case 'resync':
        return [];
    }
  }

  private server(pool: string, s: Server): ActivityEntry[] {
    const key = `${pool}\u0000${s.id}`;
    const before = this.servers.get(key);
    // Most changes are a heartbeat, a load report or units reserved (one per placement made or
    // released): nothing to tell, and nothing to allocate.
    if (before && before.epoch === s.epoch && before.health === s.health.status && before.admin === s.adminState) return NOTHING;
    this.servers.set(key, { epoch: s.epoch, health: s.health.status, admin: s.adminState });
    const base = { pool, serverId: s.id };
    if (!before || before.epoch !== s.epoch) {
      const where = s.region ? ` in ${s.region}` : '';
      // Pools without a unit limit (HTTP backends, TURN) register a huge capacity: not worth saying.
      const cap = s.capacity > 0 && s.capacity < 1e9 ? `, capacity ${s.capacity}` : '';
      return [this.entry({ ...base, kind: 'registered', level: 'info', message: `${s.id} ${before ? 're-registered' : 'registered'} in ${pool}${where}${cap}` })];
    }
    const out: ActivityEntry[] = [];
    if (before.health !== s.health.status) {
      const why = s.health.status !== 'healthy' && s.health.lastError ? `: ${s.health.lastError}` : '';
      const level = s.health.status === 'healthy' ? 'info' : s.health.status === 'unhealthy' ? 'error' : 'warn';
      out.push(this.entry({ ...base, kind: 'health', level, message: `${s.id} ${before.health} → ${s.health.status}${why}` }));
    }
    if (before.admin !== s.adminState) {
      const what = s.adminState === 'active' ? `back in service (was ${before.admin})` : s.adminState === 'drain' ? 'draining' : 'in maintenance';
      out.push(this.entry({ ...base, kind: 'admin', level: s.adminState === 'active' ? 'info' : 'warn', message: `${s.id} ${what}` }));
    }
    return out;
  }

  private placement(pool: string, p: Placement): ActivityEntry[] {
    if (p.state !== 'ready') return [];
    const key = `${pool}\u0000${p.id}`;
    if (this.placements.get(key) === p.serverId) return [];
    this.placements.set(key, p.serverId);
    const was = this.released.get(key);
    this.released.delete(key);
    const again = was !== undefined && was !== p.serverId ? ` again (was on ${was})` : '';
    // Why it went there, when the placement says (those made by older versions do not).
    const why = readWhy(p.why);
    const because = why ? ` — ${whyText(why, p.serverId)}` : '';
    return [this.entry({ pool, serverId: p.serverId, placementId: p.id, kind: 'placed', level: 'info', message: `${noun(pool)} ${p.id} placed on ${p.serverId}${again}${because}` })];
  }

  private noteRelease(serverKey: string, entry: ActivityEntry): void {
    const now = this.now();
    const since = now - RECENT_MS;
    let list = this.recentReleases.get(serverKey);
    if (list === undefined) this.recentReleases.set(serverKey, (list = []));
    let old = 0;
    while (old < list.length && list[old]!.at < since) old++;
    if (old > 0) list.splice(0, old);
    if (list.length < 1_000) list.push({ at: now, entry });
    // Bounded: servers that released something and stayed are forgotten after the moment passes.
    if (this.recentReleases.size > 1_000) {
      for (const [k, l] of this.recentReleases) if (l.length === 0 || l[l.length - 1]!.at < since) this.recentReleases.delete(k);
    }
  }

  private remember(key: string, serverId: string): void {
    this.released.delete(key);
    this.released.set(key, serverId);
    if (this.released.size > 10_000) this.released.delete(this.released.keys().next().value!);
  }
}
