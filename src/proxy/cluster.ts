import cluster, { type Worker } from 'node:cluster';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { AggregatorRegistry } from 'prom-client';
import type { Config } from '../config/schema.js';
import type { Server } from '../core/model.js';
import type { Metrics } from '../metrics/registry.js';
import type { StateStore } from '../store/store.js';
import { locateRoom, type Directory, type RoomLocation } from './directory.js';

/**
 * Multi-process proxy (seed 002's Node cluster; `proxy.workers` / WORKER_COUNT > 1).
 *
 * The primary owns the registry: it runs the API, the health checks and the store (memory or
 * Redis), as a single process does; the workers only proxy. Each worker holds a copy of the http
 * pools' servers, which the primary sends whole whenever a pool changes (pools are small; a whole
 * list cannot get out of order), and asks the primary where a room lives (room connections are rare
 * next to requests; the primary's view is the one the API just answered from, so a WebSocket
 * opened right after its room was placed finds it). Per-process state that stays per worker:
 * in-flight counts for least-connections, outlier ejection, round-robin positions, and — with the
 * memory store — rate-limit buckets (`rateLimit.store: redis` shares them). Sticky cookies and
 * consistent hashing need no shared state: every worker maps a cookie or key to the same backend.
 */

/** Messages between the primary and its proxy workers. */
export type ToWorker =
  | { sb: 'init'; config: Config; pools: string[]; servers: Record<string, Server[]> }
  | { sb: 'servers'; pool: string; servers: Server[] }
  | { sb: 'room'; id: number; location: RoomLocation }
  | { sb: 'close'; graceMs: number };
export type FromWorker = { sb: 'ready' } | { sb: 'listening'; port: number; tlsPort?: number } | { sb: 'room'; id: number; roomId: string } | { sb: 'failed'; message: string; code?: string };

export interface ProxyCluster {
  url: string;
  /** Base URL of the TLS listener, when proxy.tls is configured. */
  tlsUrl?: string;
  workers(): number;
  close(graceMs: number): Promise<void>;
}

export interface ProxyClusterOptions {
  config: Config;
  store: StateStore;
  pools: string[];
  logger: Logger;
  metrics: Metrics['registry'] | Metrics;
}

const RESTART_MIN_MS = 250;
const RESTART_MAX_MS = 10_000;
/** A worker that lived this long died of something new: its replacement starts at once. */
const RESTART_STABLE_MS = 10_000;

const isMsg = (m: unknown): m is FromWorker => typeof m === 'object' && m !== null && 'sb' in m;

/** Starts `config.proxy.workers` proxy processes and keeps them fed and alive. */
export async function startProxyCluster(o: ProxyClusterOptions & { extraMetrics?: Metrics['extra'] }): Promise<ProxyCluster> {
  const { config, store, pools, logger } = o;
  const exec = fileURLToPath(new URL('./worker.js', import.meta.url));
  cluster.setupPrimary({ exec, args: [], silent: false });
  const workers = new Set<Worker>();
  let closing = false;
  let port = 0;
  let tlsPort: number | undefined;

  const snapshot = () => Object.fromEntries(pools.map((p) => [p, store.listServers(p)]));
  const send = (w: Worker, m: ToWorker) => {
    if (w.isConnected()) w.send(m);
  };
  // Whole pool lists, at most once per tick per pool.
  const dirty = new Set<string>();
  const unsubscribe = store.subscribe((ev) => {
    if (ev.type === 'placement' || ev.type === 'placement-removed' || !pools.includes(ev.pool)) return;
    if (dirty.size === 0) {
      setImmediate(() => {
        for (const pool of dirty) for (const w of workers) send(w, { sb: 'servers', pool, servers: store.listServers(pool) });
        dirty.clear();
      });
    }
    dirty.add(ev.pool);
  });

  // A worker that dies soon after it started is restarted later each time (500 ms doubling to
  // 10 s), so one that cannot start (a bad certificate read at listen, no memory) does not spin.
  let restartDelay = RESTART_MIN_MS;
  const fork = (): Promise<Worker> =>
    new Promise((resolve, reject) => {
      const w = cluster.fork({ SWITCHBOARD_PROXY_WORKER: '1' });
      const startedAt = Date.now();
      workers.add(w);
      w.on('message', (m: unknown) => {
        if (!isMsg(m)) return;
        // 'ready' (not 'online'): the worker listens for messages only once its modules loaded.
        if (m.sb === 'ready') send(w, { sb: 'init', config, pools, servers: snapshot() });
        else if (m.sb === 'listening') {
          port = m.port;
          tlsPort = m.tlsPort;
          resolve(w);
        } else if (m.sb === 'failed') {
          // The error's code travels too: EADDRINUSE becomes "proxy port N is in use" at start.
          reject(Object.assign(new Error(`proxy worker failed to start: ${m.message}`), m.code !== undefined ? { code: m.code } : {}));
        } else if (m.sb === 'room') send(w, { sb: 'room', id: m.id, location: locateRoom(store, m.roomId) });
      });
      w.once('exit', (code, signal) => {
        workers.delete(w);
        reject(new Error(`proxy worker exited during start (code ${code}, signal ${signal})`));
        if (closing) return;
        restartDelay = Date.now() - startedAt > RESTART_STABLE_MS ? RESTART_MIN_MS : Math.min(restartDelay * 2, RESTART_MAX_MS);
        const delay = restartDelay;
        logger.error({ pid: w.process.pid, code, signal, restartInMs: delay }, 'proxy worker died; starting another');
        setTimeout(() => {
          if (!closing) fork().catch((err: unknown) => logger.error({ err }, 'proxy worker restart failed'));
        }, delay).unref();
      });
    });

  try {
    await Promise.all(Array.from({ length: config.proxy.workers }, fork));
  } catch (err) {
    closing = true;
    unsubscribe();
    for (const w of workers) w.process.kill('SIGKILL');
    throw err;
  }
  // The workers' proxy metrics, aggregated by prom-client over the cluster channel, on /metrics.
  const aggregator = new AggregatorRegistry();
  if ('extra' in o.metrics) o.metrics.extra.source = () => aggregator.clusterMetrics();
  const host = config.proxy.host === '0.0.0.0' || config.proxy.host === '::' ? '127.0.0.1' : config.proxy.host;
  const shown = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shown}:${port}`,
    ...(tlsPort !== undefined ? { tlsUrl: `https://${shown}:${tlsPort}` } : {}),
    workers: () => workers.size,
    close: async (graceMs) => {
      closing = true;
      unsubscribe();
      const exits = [...workers].map((w) => new Promise<void>((resolve) => (w.isDead() ? resolve() : w.once('exit', () => resolve()))));
      for (const w of workers) send(w, { sb: 'close', graceMs });
      const timer = setTimeout(() => {
        for (const w of workers) w.process.kill('SIGKILL');
      }, graceMs + 2_000);
      await Promise.all(exits);
      clearTimeout(timer);
    },
  };
}

/** The worker's directory: pool lists pushed by the primary, rooms asked of it. */
export class IpcDirectory implements Directory {
  private readonly lists = new Map<string, Server[]>();
  private readonly listeners = new Set<(pool: string) => void>();
  private readonly waiting = new Map<number, (loc: RoomLocation) => void>();
  private nextId = 1;

  constructor(initial: Record<string, Server[]>) {
    for (const [pool, servers] of Object.entries(initial)) this.lists.set(pool, servers);
  }

  /** A message from the primary. */
  onMessage(m: ToWorker): void {
    if (m.sb === 'servers') {
      this.lists.set(m.pool, m.servers);
      for (const l of this.listeners) l(m.pool);
    } else if (m.sb === 'room') {
      this.waiting.get(m.id)?.(m.location);
      this.waiting.delete(m.id);
    }
  }

  servers(pool: string): readonly Server[] {
    return this.lists.get(pool) ?? [];
  }

  subscribe(listener: (pool: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  room(roomId: string): Promise<RoomLocation> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        resolve({ state: 'unavailable' });
      }, 2_000);
      this.waiting.set(id, (loc) => {
        clearTimeout(timer);
        resolve(loc);
      });
      process.send?.({ sb: 'room', id, roomId } satisfies FromWorker);
    });
  }
}
