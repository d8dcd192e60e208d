import { randomUUID } from 'node:crypto';
import { freeUnits } from '../core/capacity.js';
import type { AdminState, HealthState, LossReason, LostPlacement, Placement, ReportedLoad, Server, ServerRegistration } from '../core/model.js';
import { explainSelection, WHY_RANKED } from '../core/explain.js';
import { rankTop } from '../core/policies/index.js';
import { isExpired, newPlacement, newServer, readyPlacement } from '../core/server.js';
import { checkIndexArgs, type ReleaseResult, type ReserveRequest, type ReserveResult, type ServerPatch, type StateStore, type StoreEvent } from './store.js';
import { PoolViews, type PoolView } from './view.js';

/**
 * The default store: one instance, state in process memory. Every method runs to completion
 * without yielding before it changes anything, which is what makes each write atomic here.
 */
export class MemoryStore implements StateStore {
  readonly kind = 'memory' as const;
  private readonly views = new PoolViews();
  private readonly listeners = new Set<(event: StoreEvent) => void>();
  private readonly leases = new Map<string, { holder: string; until: number }>();
  /** Session indexes: `pool \0 index \0 key` → value and expiry (ms, Date.now()). */
  private readonly indexes = new Map<string, { value: string; until: number }>();
  /** Where the periodic sweep goes on from (a live Map iterator), and its timer while entries exist. */
  private sweepAt: Iterator<[string, { value: string; until: number }]> | undefined;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(private readonly random: () => number = Math.random) {}

  async start(): Promise<void> {}
  async close(): Promise<void> {
    this.listeners.clear();
    clearInterval(this.sweeper);
    this.sweeper = undefined;
  }
  available(): boolean {
    return true;
  }

  async registerServer(pool: string, registration: ServerRegistration, now: number): Promise<{ server: Server; lost: LostPlacement[] }> {
    const view = this.views.get(pool);
    const previous = view.servers.get(registration.id);
    const lost = previous ? this.dropPlacements(pool, view, previous.id, 'server-restarted') : [];
    const server = newServer(registration, now, randomUUID());
    if (previous) server.rev = previous.rev + 1;
    view.putServer(server);
    this.emit({ type: 'server', pool, server });
    return { server, lost };
  }

  async deregisterServer(pool: string, id: string): Promise<{ server?: Server; lost: LostPlacement[] }> {
    const view = this.views.get(pool);
    const server = view.servers.get(id);
    if (!server) return { lost: [] };
    const lost = this.dropPlacements(pool, view, id, 'server-deregistered');
    view.deleteServer(id);
    this.emit({ type: 'server-removed', pool, id });
    return { server: { ...server, reserved: 0 }, lost };
  }

  async heartbeat(pool: string, id: string, load: ReportedLoad | undefined, now: number): Promise<Server | undefined> {
    return this.update(pool, id, (s) => {
      s.lastHeartbeat = now;
      if (load) s.reported = load;
    });
  }

  async setAdminState(pool: string, id: string, state: AdminState, expected?: AdminState): Promise<Server | undefined> {
    if (expected !== undefined && this.views.get(pool).servers.get(id)?.adminState !== expected) return undefined;
    return this.update(pool, id, (s) => {
      s.adminState = state;
    });
  }

  async patchServer(pool: string, id: string, patch: ServerPatch): Promise<Server | undefined> {
    return this.update(pool, id, (s) => {
      if (patch.weight !== undefined) s.weight = patch.weight;
      if (patch.capacity !== undefined) s.capacity = patch.capacity;
      if (patch.attributes !== undefined) s.attributes = { ...s.attributes, ...patch.attributes };
    });
  }

  async recordHealth(pool: string, id: string, epoch: string, health: HealthState): Promise<Server | undefined> {
    if (this.views.get(pool).servers.get(id)?.epoch !== epoch) return undefined;
    return this.update(pool, id, (s) => {
      s.health = health;
    });
  }

  async releaseServerPlacements(pool: string, id: string, epoch: string, reason: LossReason): Promise<LostPlacement[]> {
    const view = this.views.get(pool);
    if (view.servers.get(id)?.epoch !== epoch) return [];
    return this.dropPlacements(pool, view, id, reason);
  }

  getServer(pool: string, id: string): Server | undefined {
    return this.views.get(pool).servers.get(id);
  }

  listServers(pool: string): Server[] {
    return [...this.views.get(pool).servers.values()];
  }

  async reserve(pool: string, request: ReserveRequest): Promise<ReserveResult> {
    const view = this.views.get(pool);
    const existing = view.placements.get(request.placementId);
    if (existing && !isExpired(existing, request.now)) return { outcome: 'existing', placement: existing };
    const selection = { units: request.units, region: request.region, exclude: new Set(request.exclude ?? []) };
    // Selection sees the servers as they will be once an expired placement is reclaimed.
    let servers = [...view.servers.values()];
    if (existing) servers = servers.map((s) => (s.id === existing.serverId ? { ...s, reserved: Math.max(0, s.reserved - existing.units) } : s));
    // The policy's first few in its order, not just its pick: the first is the pick (rankTop draws
    // from `random` as the policy would), the others go into the placement's explanation.
    const ranked = rankTop(request.policy, servers, selection, this.random, WHY_RANKED);
    const server = ranked[0];
    if (existing) this.removePlacement(pool, view, existing); // expired: released whatever follows
    if (!server || freeUnits(server) < request.units) return { outcome: 'no-capacity' };
    const placement = newPlacement(server, request, randomUUID(), explainSelection(request.policy, servers, selection, ranked));
    view.putPlacement(placement);
    const current = view.servers.get(server.id)!;
    this.replaceServer(pool, view, { ...current, reserved: current.reserved + request.units, rev: current.rev + 1 });
    this.emit({ type: 'placement', pool, placement });
    return existing ? { outcome: 'reserved', placement, reclaimed: existing } : { outcome: 'reserved', placement };
  }

  async confirm(pool: string, placementId: string, serverId: string, data: Record<string, unknown>, attempt?: string): Promise<Placement | undefined> {
    const view = this.views.get(pool);
    const current = view.placements.get(placementId);
    if (!current || current.serverId !== serverId || (attempt !== undefined && current.attempt !== attempt)) return undefined;
    const placement = readyPlacement(current, data);
    view.putPlacement(placement);
    this.emit({ type: 'placement', pool, placement });
    return placement;
  }

  async release(pool: string, placementId: string, serverId?: string, attempt?: string): Promise<ReleaseResult> {
    const view = this.views.get(pool);
    const placement = view.placements.get(placementId);
    if (!placement || (attempt !== undefined && placement.attempt !== attempt)) return { outcome: 'not-found' };
    if (serverId !== undefined && placement.serverId !== serverId) return { outcome: 'wrong-server', placement };
    this.removePlacement(pool, view, placement);
    return { outcome: 'released', placement };
  }

  async releaseExpired(pool: string, now: number): Promise<Placement[]> {
    const view = this.views.get(pool);
    const expired = [...view.placements.values()].filter((p) => isExpired(p, now));
    for (const placement of expired) this.removePlacement(pool, view, placement);
    return expired;
  }

  getPlacement(pool: string, id: string): Placement | undefined {
    return this.views.get(pool).placements.get(id);
  }

  listPlacements(pool: string, serverId?: string): Placement[] {
    const view = this.views.get(pool);
    return serverId === undefined ? [...view.placements.values()] : view.placementsOf(serverId);
  }

  countPlacements(pool: string, serverId?: string): number {
    return this.views.get(pool).countOf(serverId);
  }

  async acquireLeases(pool: string, holder: string, ids: string[], ttlMs: number): Promise<string[]> {
    const now = Date.now();
    const held: string[] = [];
    for (const id of ids) {
      const key = `${pool}\u0000${id}`;
      const lease = this.leases.get(key);
      if (!lease || lease.holder === holder || lease.until <= now) {
        this.leases.set(key, { holder, until: now + ttlMs });
        held.push(id);
      }
    }
    return held;
  }

  async setIndex(pool: string, index: string, key: string, value: string, ttlMs: number): Promise<void> {
    checkIndexArgs(index, key, { value, ttlMs });
    this.indexes.set(indexKey(pool, index, key), { value, until: Date.now() + ttlMs });
    if (!this.sweeper) {
      this.sweeper = setInterval(() => this.sweepIndexes(), INDEX_SWEEP_MS);
      this.sweeper.unref();
    }
  }

  async getIndex(pool: string, index: string, key: string): Promise<string | undefined> {
    checkIndexArgs(index, key);
    const k = indexKey(pool, index, key);
    const entry = this.indexes.get(k);
    if (!entry) return undefined;
    if (entry.until <= Date.now()) {
      this.indexes.delete(k); // lazy expiry
      return undefined;
    }
    return entry.value;
  }

  async deleteIndex(pool: string, index: string, key: string): Promise<void> {
    checkIndexArgs(index, key);
    this.indexes.delete(indexKey(pool, index, key));
  }

  /**
   * Drops expired index entries, at most INDEX_SWEEP_BATCH per tick, going on where the last tick
   * stopped (a Map iterator stays valid across deletes and inserts), so a large index costs a
   * bounded slice of each tick; entries nobody reads again are gone within a few passes.
   */
  private sweepIndexes(): void {
    const now = Date.now();
    for (let n = 0; n < INDEX_SWEEP_BATCH; n++) {
      this.sweepAt ??= this.indexes.entries();
      const next = this.sweepAt.next();
      if (next.done) {
        this.sweepAt = undefined;
        break;
      }
      if (next.value[1].until <= now) this.indexes.delete(next.value[0]);
    }
    if (this.indexes.size === 0) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
      this.sweepAt = undefined;
    }
  }

  subscribe(listener: (event: StoreEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private update(pool: string, id: string, change: (server: Server) => void): Server | undefined {
    const view = this.views.get(pool);
    const current = view.servers.get(id);
    if (!current) return undefined;
    const server: Server = { ...current, rev: current.rev + 1 };
    change(server);
    this.replaceServer(pool, view, server);
    return server;
  }

  private replaceServer(pool: string, view: PoolView, server: Server): void {
    view.putServer(server);
    this.emit({ type: 'server', pool, server });
  }

  private removePlacement(pool: string, view: PoolView, placement: Placement): void {
    view.deletePlacement(placement.id);
    const server = view.servers.get(placement.serverId);
    if (server) {
      this.replaceServer(pool, view, { ...server, reserved: Math.max(0, server.reserved - placement.units), rev: server.rev + 1 });
    }
    this.emit({ type: 'placement-removed', pool, placement });
  }

  private dropPlacements(pool: string, view: PoolView, serverId: string, reason: LossReason): LostPlacement[] {
    return view.placementsOf(serverId).map((placement) => {
      this.removePlacement(pool, view, placement);
      return { placement, reason };
    });
  }

  private emit(event: StoreEvent): void {
    for (const listener of this.listeners) listener(event);
  }
}

const INDEX_SWEEP_MS = 1000;
const INDEX_SWEEP_BATCH = 10_000;

function indexKey(pool: string, index: string, key: string): string {
  return `${pool}\u0000${index}\u0000${key}`;
}
