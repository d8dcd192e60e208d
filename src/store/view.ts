import type { Placement, Server } from '../core/model.js';

/**
 * One pool's servers and placements, indexed for the reads the API makes. The memory store keeps
 * its truth in it; the Redis store keeps its local read cache in it.
 */
export class PoolView {
  readonly servers = new Map<string, Server>();
  readonly placements = new Map<string, Placement>();
  private readonly byServer = new Map<string, Set<string>>();

  putServer(server: Server): void {
    this.servers.set(server.id, server);
  }

  deleteServer(id: string): void {
    this.servers.delete(id);
  }

  putPlacement(placement: Placement): void {
    const previous = this.placements.get(placement.id);
    if (previous && previous.serverId !== placement.serverId) this.byServer.get(previous.serverId)?.delete(placement.id);
    this.placements.set(placement.id, placement);
    let ids = this.byServer.get(placement.serverId);
    if (!ids) this.byServer.set(placement.serverId, (ids = new Set()));
    ids.add(placement.id);
  }

  deletePlacement(id: string): Placement | undefined {
    const placement = this.placements.get(id);
    if (!placement) return undefined;
    this.placements.delete(id);
    const ids = this.byServer.get(placement.serverId);
    ids?.delete(id);
    if (ids?.size === 0) this.byServer.delete(placement.serverId);
    return placement;
  }

  placementsOf(serverId: string): Placement[] {
    const ids = this.byServer.get(serverId);
    if (!ids) return [];
    return [...ids].map((id) => this.placements.get(id)).filter((p): p is Placement => p !== undefined);
  }

  /** How many placements (all, or `serverId`'s): O(1), for counts shown on every change. */
  countOf(serverId?: string): number {
    return serverId === undefined ? this.placements.size : (this.byServer.get(serverId)?.size ?? 0);
  }

  clear(): void {
    this.servers.clear();
    this.placements.clear();
    this.byServer.clear();
  }
}

/** Lazily created views by pool name. */
export class PoolViews {
  private readonly views = new Map<string, PoolView>();

  get(pool: string): PoolView {
    let view = this.views.get(pool);
    if (!view) this.views.set(pool, (view = new PoolView()));
    return view;
  }

  pools(): string[] {
    return [...this.views.keys()];
  }
}
