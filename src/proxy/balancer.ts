import { isPlaceable } from '../core/capacity.js';
import type { Server } from '../core/model.js';
import { consistentHash } from '../core/policies/consistent-hash.js';
import { leastConnections } from '../core/policies/least-connections.js';
import type { Picker } from '../core/policies/picker.js';
import { roundRobin } from '../core/policies/round-robin.js';
import { twoRandomChoices } from '../core/policies/two-random-choices.js';
import { weightedRoundRobin } from '../core/policies/weighted-round-robin.js';
import { inPanic, OutlierDetector } from '../core/outlier.js';
import { slowStartWeight } from '../core/slow-start.js';
import type { NetworkPolicy } from '../security/network-policy.js';
import type { HttpPoolConfig, HttpPolicyName } from './schema.js';
import { Upstream } from './upstream.js';

/** Someone waiting for a backend with room (HAProxy's backend queue). */
export interface Waiter {
  /** When it gives up (ms since epoch, the proxy's coarse clock). */
  queuedUntil: number;
  /** A backend has room: called with it (its inflight already counted). */
  granted(upstream: Upstream): void;
}

function picker(name: HttpPolicyName, config: HttpPoolConfig): Picker<Upstream> {
  switch (name) {
    case 'round-robin':
      return roundRobin();
    case 'weighted-round-robin':
      return weightedRoundRobin();
    case 'least-connections':
      return leastConnections();
    case 'two-random-choices':
      return twoRandomChoices();
    case 'consistent-hash':
      return consistentHash({ loadFactor: config.hash?.loadFactor ?? 1.25 });
  }
}

/** `http://host:port` → host and port; undefined for anything else. */
export function hostPort(url: string): { host: string; port: number; tls: boolean } | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined;
  }
  const tls = u.protocol === 'https:' || u.protocol === 'wss:';
  if (!tls && u.protocol !== 'http:' && u.protocol !== 'ws:') return undefined;
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  return { host, port: u.port ? Number(u.port) : tls ? 443 : 80, tls };
}

/**
 * One pool's data-plane state in this process: its backends as `Upstream`s (from the store's view
 * of the pool), the candidates the picker sees, passive outlier ejection, slow start and the queue
 * of requests waiting for a backend under its maxconn.
 *
 * The candidate array keeps its identity until the set or a weight changes (pickers memoize per
 * array: the hash ring), and is rebuilt by `refresh` on a store change, an ejection, or the tick.
 */
export class PoolBalancer {
  readonly upstreams = new Map<string, Upstream>();
  candidates: Upstream[] = [];
  readonly outlier: OutlierDetector;
  private readonly picker: Picker<Upstream>;
  private readonly queue: Waiter[] = [];
  private queueHead = 0;
  /** Number of requests retried, ejections and queue overflows: read by the metrics at scrape time. */
  ejections = 0;
  panic = false;
  private dirty = true;

  constructor(
    readonly name: string,
    readonly config: HttpPoolConfig,
    private readonly maxIdle: number,
    private readonly networkPolicy: NetworkPolicy | undefined,
    private readonly random: () => number = Math.random,
    /** A backend left the pool (its metrics series go with it). */
    private readonly onRemove?: (u: Upstream) => void,
  ) {
    this.picker = picker(config.policy, config);
    this.outlier = new OutlierDetector({
      consecutiveFailures: config.outlier.consecutiveFailures,
      baseEjectionMs: config.outlier.baseEjectionMs,
      maxEjectionMs: config.outlier.maxEjectionMs,
      maxEjectionPercent: config.outlier.maxEjectionPercent,
      panicThresholdPercent: config.outlier.panicThresholdPercent,
    });
  }

  /** The store's view of the pool changed: add, update and drop upstreams. */
  sync(servers: readonly Server[], now: number): void {
    const seen = new Set<string>();
    for (const s of servers) {
      const where = hostPort(s.serviceUrl);
      if (!where) continue;
      seen.add(s.id);
      let u = this.upstreams.get(s.id);
      if (u && (u.host !== where.host || u.port !== where.port || u.tls !== where.tls)) {
        u.closeIdle();
        u = undefined;
      }
      const maxconn = typeof s.attributes.maxconn === 'number' ? s.attributes.maxconn : this.config.maxconn;
      if (!u) {
        u = new Upstream(s.id, where.host, where.port, where.tls, s.weight, maxconn, this.maxIdle, this.networkPolicy);
        this.upstreams.set(s.id, u);
      }
      u.configuredWeight = s.weight;
      u.maxconn = maxconn;
      const placeable = isPlaceable(s);
      // Slow start after a recovery, not at the first start (HAProxy's slowstart likewise).
      if (placeable && !u.placeable && u.everPlaceable) u.recoveredAt = now;
      if (placeable) u.everPlaceable = true;
      if (!placeable) u.closeIdle();
      u.placeable = placeable;
    }
    for (const [id, u] of this.upstreams) {
      if (seen.has(id)) continue;
      u.closeIdle();
      this.upstreams.delete(id);
      this.outlier.forget(id);
      this.onRemove?.(u);
    }
    this.dirty = true;
    this.refresh(now);
  }

  /** Rebuilds the candidates when anything changed: ejections ending, slow start ramping. */
  refresh(now: number): void {
    let changed = this.dirty;
    this.dirty = false;
    let usable = 0;
    let placeable = 0;
    for (const u of this.upstreams.values()) {
      if (!u.placeable) continue;
      placeable++;
      if (!this.outlier.isEjected(u.id, now)) usable++;
      const w = this.config.slowStartMs > 0 && u.recoveredAt > 0 ? slowStartWeight(u.configuredWeight, u.recoveredAt, now, this.config.slowStartMs) : u.configuredWeight;
      if (w !== u.weight) {
        u.weight = w;
        changed = true;
      }
    }
    const panic = placeable > 0 && inPanic(usable, placeable, this.config.outlier.panicThresholdPercent);
    const next: Upstream[] = [];
    for (const u of this.upstreams.values()) {
      if (u.placeable && (panic || !this.outlier.isEjected(u.id, now))) next.push(u);
    }
    if (!changed && panic === this.panic && next.length === this.candidates.length && next.every((u, i) => u === this.candidates[i])) return;
    this.panic = panic;
    this.candidates = next;
    this.drainQueue();
  }

  /** A backend for a request, or undefined when none has room (then `enqueue`). */
  pick(key: string | undefined, exclude: ReadonlySet<string> | undefined): Upstream | undefined {
    const u = this.picker.pick(this.candidates, { key, random: this.random, exclude });
    if (u) u.inflight++;
    return u;
  }

  /** A specific backend (sticky cookie) if it is a candidate with room. */
  pickById(id: string): Upstream | undefined {
    const u = this.upstreams.get(id);
    if (!u || !this.candidates.includes(u) || u.weight <= 0 || (u.maxconn > 0 && u.inflight >= u.maxconn)) return undefined;
    u.inflight++;
    return u;
  }

  /** Whether the pool has any candidate at all (else: 503 at once, no queueing). */
  get available(): boolean {
    return this.candidates.length > 0;
  }

  get queueLength(): number {
    return this.queue.length - this.queueHead;
  }

  /** Queues a request for a backend with room; false when the queue is full. */
  enqueue(w: Waiter): boolean {
    if (this.queueLength >= this.config.queue.size) return false;
    this.queue.push(w);
    return true;
  }

  /** Removes a waiter that gave up (client gone). */
  dequeue(w: Waiter): void {
    const i = this.queue.indexOf(w, this.queueHead);
    if (i !== -1) this.queue.splice(i, 1);
  }

  /** An exchange on `u` ended: its slot goes to the first waiter, if any. */
  release(u: Upstream): void {
    u.inflight--;
    if (this.queueLength > 0) this.drainQueue();
  }

  /** Result of an exchange, for outlier ejection. */
  record(u: Upstream, ok: boolean, now: number): void {
    if (this.config.outlier.consecutiveFailures === 0) return;
    if (this.outlier.record(u.id, ok ? 'success' : 'failure', now, this.upstreams.size) === 'ejected') {
      this.ejections++;
      u.closeIdle();
      this.dirty = true;
      this.refresh(now);
    }
  }

  /** Waiters past their queue timeout, removed and returned (the tick answers them 503). */
  expired(now: number): Waiter[] {
    const out: Waiter[] = [];
    while (this.queueLength > 0 && this.queue[this.queueHead]!.queuedUntil <= now) out.push(this.queue[this.queueHead++]!);
    this.compact();
    return out;
  }

  private drainQueue(): void {
    while (this.queueLength > 0) {
      const u = this.picker.pick(this.candidates, { key: undefined, random: this.random, exclude: undefined });
      if (!u) break;
      u.inflight++;
      this.queue[this.queueHead++]!.granted(u);
    }
    this.compact();
  }

  private compact(): void {
    if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue.splice(0, this.queueHead);
      this.queueHead = 0;
    }
    if (this.queueHead === this.queue.length) {
      this.queue.length = 0;
      this.queueHead = 0;
    }
  }

  close(): void {
    for (const u of this.upstreams.values()) u.closeIdle();
  }
}
