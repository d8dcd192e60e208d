import type { Logger } from 'pino';
import type { Server } from '../../core/model.js';
import { AppError, notFound } from '../../errors.js';
import type { BackendEntry, ProxyConfig } from '../../proxy/schema.js';
import type { StateStore } from '../../store/store.js';
import { operatorAdminState } from '../admin.js';

/** HTTP backends have no unit capacity: the data plane limits them by `maxconn` instead. */
const UNBOUNDED = 1e12;

/**
 * The pools of HTTP backends (seed 002; seed 004's web and media pools): every pool the proxy
 * configuration names, plus `media` (seed 004's WebSocket rule sends WebSockets there when it has
 * backends) and the default pool.
 */
export function httpPools(config: ProxyConfig): string[] {
  const names = new Set<string>([config.defaultPool, 'media']);
  for (const name of Object.keys(config.pools)) names.add(name);
  for (const b of config.backends) names.add(b.pool ?? config.defaultPool);
  for (const r of config.routes) if (r.pool !== undefined) names.add(r.pool);
  return [...names];
}

/** A backend's id when none is given: `host:port` (IPv6 literals bracketed). */
export function backendId(entry: Pick<BackendEntry, 'host' | 'port' | 'id'>): string {
  return entry.id ?? `${entry.host.includes(':') ? `[${entry.host}]` : entry.host}:${entry.port}`;
}

function serviceUrl(entry: Pick<BackendEntry, 'host' | 'port'>): string {
  return `http://${entry.host.includes(':') ? `[${entry.host}]` : entry.host}:${entry.port}`;
}

export interface HttpPoolServiceDeps {
  store: StateStore;
  config: ProxyConfig;
  logger?: Logger;
  now?: () => number;
}

/**
 * HTTP backends: servers of kind `http`, registered from the configuration at start (seed 002's
 * `config/backends.json`) or at run time through the API, drained and removed like any server.
 * Their health is the pool's active HTTP check (src/switchboard.ts wires one HealthChecker per
 * pool); the data plane (src/proxy/) reads them from the store's view.
 */
export class HttpPoolService {
  readonly pools: string[];
  private readonly now: () => number;

  constructor(private readonly d: HttpPoolServiceDeps) {
    this.pools = httpPools(d.config);
    this.now = d.now ?? Date.now;
  }

  /** The pool of a backend registered without one. */
  get defaultPool(): string {
    return this.d.config.defaultPool;
  }

  /**
   * Registers the configured backends that are not registered as configured yet (several
   * instances sharing Redis all do this; a backend already there keeps its health and epoch).
   */
  async registerConfigured(): Promise<void> {
    for (const entry of this.d.config.backends) await this.register(entry);
  }

  /**
   * Registers a backend (again: its settings replace the earlier ones). A backend already
   * registered with the same address, health path, region and maxconn is not registered anew:
   * that would reset its health to unknown and its admin state to active, taking a serving
   * backend out of rotation until its next probe (the only one of a pool: an outage) and
   * undoing a drain. Its weight alone is patched in place.
   */
  async register(entry: BackendEntry): Promise<Server> {
    const pool = entry.pool ?? this.defaultPool;
    this.assertPool(pool);
    const id = backendId(entry);
    const url = serviceUrl(entry);
    const weight = entry.weight ?? 100;
    const attributes: Record<string, number | string | boolean> = { host: entry.host, port: entry.port };
    if (entry.maxconn !== undefined) attributes.maxconn = entry.maxconn;
    const existing = this.d.store.getServer(pool, id);
    if (
      existing &&
      existing.kind === 'http' &&
      existing.serviceUrl === url &&
      existing.healthPath === entry.healthPath &&
      existing.region === entry.region &&
      existing.attributes.maxconn === attributes.maxconn
    ) {
      if (existing.weight === weight) return existing;
      const patched = await this.d.store.patchServer(pool, id, { weight });
      if (patched) {
        this.d.logger?.info({ pool, id, weight }, 'backend weight changed');
        return patched;
      }
    }
    const { server } = await this.d.store.registerServer(
      pool,
      {
        id,
        kind: 'http',
        serviceUrl: url,
        capacity: UNBOUNDED,
        weight,
        ...(entry.region !== undefined ? { region: entry.region } : {}),
        ...(entry.healthPath !== undefined ? { healthPath: entry.healthPath } : {}),
        attributes,
        // The pool's health check decides, at once (the checker probes immediately).
        initialHealth: 'unknown',
      },
      this.now(),
    );
    this.d.logger?.info({ pool, id, url }, 'backend registered');
    return server;
  }

  list(pool?: string): { pool: string; server: Server }[] {
    const pools = pool === undefined ? this.pools : [pool];
    return pools.flatMap((p) => this.d.store.listServers(p).map((server) => ({ pool: p, server })));
  }

  get(pool: string, id: string): Server {
    this.assertPool(pool);
    const s = this.d.store.getServer(pool, id);
    if (!s) throw notFound(`backend in pool ${pool}`, 'params.id', id);
    return s;
  }

  async setState(pool: string, id: string, state: 'active' | 'drain' | 'maint'): Promise<Server> {
    this.get(pool, id);
    const s = await operatorAdminState(this.d.store, pool, id, state);
    if (!s) throw notFound(`backend in pool ${pool}`, 'params.id', id);
    return s;
  }

  async remove(pool: string, id: string): Promise<Server> {
    const s = this.get(pool, id);
    await this.d.store.deregisterServer(pool, id);
    return s;
  }

  assertPool(pool: string): void {
    if (!this.pools.includes(pool)) {
      throw new AppError(400, 'unknown_pool', `pool: unknown pool ${pool}; the proxy has ${this.pools.join(', ')} (add it under proxy.pools)`, { field: 'pool', reason: 'unknown pool' });
    }
  }
}
