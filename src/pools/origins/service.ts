import type { Logger } from 'pino';
import type { Config } from '../../config/schema.js';
import type { Placement, ReportedLoad, Server } from '../../core/model.js';
import { AppError, notFound } from '../../errors.js';
import type { StateStore } from '../../store/store.js';
import { aliveHealth, originEndpoints, type OriginRegistration } from './srs.js';

export const ORIGINS_POOL = 'origins';

/** Origins have no capacity limit unless they register one; streams are placements of one unit. */
const UNBOUNDED = 1e12;

export interface OriginServiceDeps {
  store: StateStore;
  config: Config['origins'];
  /** This instance (lease holder for the alive sweep). */
  instanceId: string;
  logger?: Logger;
  now?: () => number;
}

/** What a registration did: `registered` (new, or its endpoints changed) or `heartbeat` (same). */
export type RegisterAction = 'registered' | 'heartbeat';

/**
 * Streaming origins (seed 003): servers of kind `origin` in the `origins` pool, registered by SRS's
 * heartbeat (`POST /api/v1/srs/register`) or the generic API (`POST /origins/register`).
 *
 * A registration is idempotent: SRS repeats it every ~9 s, so a known server with the same
 * endpoints is only heartbeated (its stream placements stay); a new server, or one whose endpoints,
 * region, capacity or device id changed, is registered anew (a new epoch: its earlier placements
 * are released, as they may point at ports that are gone). Alive = heard from within
 * `aliveSeconds`; one instance at a time (by lease) marks the silent ones unhealthy.
 */
export class OriginService {
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly d: OriginServiceDeps) {
    this.now = d.now ?? Date.now;
  }

  get aliveMs(): number {
    return this.d.config.aliveSeconds * 1000;
  }

  /** Sweep period: often enough to notice a silent origin within a fraction of aliveSeconds. */
  get sweepMs(): number {
    return Math.max(100, Math.min(5_000, Math.floor(this.aliveMs / 4)));
  }

  start(): void {
    this.stopped = false;
    const tick = () =>
      void this.sweep()
        .catch((err: unknown) => this.d.logger?.warn({ err: (err as Error).message }, 'origins alive sweep failed'))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.sweepMs).unref();
        });
    this.timer = setTimeout(tick, this.sweepMs).unref();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** Registers a new origin or heartbeats a known one with the same registration. */
  async register(reg: OriginRegistration): Promise<{ server: Server; action: RegisterAction }> {
    const now = this.now();
    const existing = this.d.store.getServer(ORIGINS_POOL, reg.serverId);
    const endpoints = originEndpoints(reg);
    const capacity = reg.capacity ?? UNBOUNDED;
    const labels: Record<string, string> = reg.deviceId !== undefined ? { deviceId: reg.deviceId } : {};
    if (
      existing &&
      sameRecord(existing.endpoints, endpoints) &&
      sameRecord(existing.labels, labels) &&
      existing.capacity === capacity &&
      existing.region === reg.region
    ) {
      const server = await this.touch(reg.serverId, undefined, now);
      if (server) return { server, action: 'heartbeat' };
      // Removed in between: register it.
    }
    const { server, lost } = await this.d.store.registerServer(
      ORIGINS_POOL,
      {
        id: reg.serverId,
        kind: 'origin',
        serviceUrl: `origin://${reg.host.includes(':') ? `[${reg.host}]` : reg.host}`,
        endpoints,
        capacity,
        labels,
        initialHealth: 'healthy',
        ...(reg.region !== undefined ? { region: reg.region } : {}),
      },
      now,
    );
    if (existing) this.d.logger?.info({ server: reg.serverId, released: lost.length }, 'origin re-registered with changed endpoints');
    else this.d.logger?.info({ server: reg.serverId, endpoints }, 'origin registered');
    return { server, action: 'registered' };
  }

  /** A known origin is alive (and reports load); 404 when unknown. */
  async heartbeat(serverId: string, load: ReportedLoad | undefined): Promise<Server> {
    const server = await this.touch(serverId, load, this.now());
    if (!server) throw new AppError(404, 'unknown_server', `origin "${serverId}" is not registered: POST /origins/register first`, { field: 'serverId', reason: 'not registered' });
    return server;
  }

  async deregister(serverId: string): Promise<Server> {
    const { server } = await this.d.store.deregisterServer(ORIGINS_POOL, serverId);
    if (!server) throw notFound('origin', 'id', serverId);
    return server;
  }

  listServers(): Server[] {
    return this.d.store.listServers(ORIGINS_POOL);
  }

  /** The streams mapped (all, or one origin's), from this instance's view. */
  listStreams(serverId?: string): Placement[] {
    return this.d.store.listPlacements(ORIGINS_POOL, serverId);
  }

  /** One stream's mapping, if any. */
  getStream(key: string): Placement | undefined {
    return this.d.store.getPlacement(ORIGINS_POOL, key);
  }

  placements(serverId: string): number {
    return this.d.store.countPlacements(ORIGINS_POOL, serverId);
  }

  /**
   * One round: on the origins this instance holds a lease for, writes health where it disagrees
   * with "heard from within aliveSeconds". Writes nothing while all agree.
   */
  async sweep(): Promise<void> {
    const { store } = this.d;
    const servers = store.listServers(ORIGINS_POOL);
    if (servers.length === 0 || !store.available()) return;
    const held = new Set(await store.acquireLeases(ORIGINS_POOL, this.d.instanceId, servers.map((s) => s.id), this.sweepMs * 2 + 1000));
    const now = this.now();
    for (const s of servers) {
      if (!held.has(s.id) || this.stopped) continue;
      const current = store.getServer(ORIGINS_POOL, s.id);
      if (!current) continue;
      const health = aliveHealth(current.health, current.lastHeartbeat, now, this.aliveMs);
      if (!health) continue;
      await store.recordHealth(ORIGINS_POOL, current.id, current.epoch, health);
      this.d.logger?.info({ pool: ORIGINS_POOL, server: current.id, health: health.status }, `origin ${health.status === 'healthy' ? 'alive again' : 'silent: unhealthy'}`);
    }
  }

  /** Heartbeat; an origin shown unhealthy for its silence is healthy again at once. */
  private async touch(serverId: string, load: ReportedLoad | undefined, now: number): Promise<Server | undefined> {
    const server = await this.d.store.heartbeat(ORIGINS_POOL, serverId, load, now);
    if (!server) return undefined;
    const health = aliveHealth(server.health, server.lastHeartbeat, now, this.aliveMs);
    if (!health) return server;
    return (await this.d.store.recordHealth(ORIGINS_POOL, server.id, server.epoch, health)) ?? server;
  }
}

function sameRecord(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => b[k] === a[k]);
}
