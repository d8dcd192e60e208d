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
  /** Candidates past their ejection whose trial request is still to be sent. */
  private readonly halfOpen = new Set<string>();
  /** Backends whose trial request is under way. */
  private readonly trials = new Set<string>();
  /** Outlier ejections since start: read by the metrics at scrape time. */
  ejections = 0;
  panic = false;
  private dirty = true;
  /** The clock of the last refresh (the proxy's coarse clock): when a trial was handed out. */
  private now = 0;

  constructor(
    readonly name: string,
    readonly config: HttpPoolConfig,
    private readonly maxIdle: number,
    private readonly networkPolicy: NetworkPolicy | undefined,
    private readonly random: () => number = Math.random,
    /** A backend left the pool (its metrics series go with it), or moved to a new upstream `successor`. */
    private readonly onRemove?: (u: Upstream, successor?: Upstream) => void,
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
    // Only a change the pickers see rebuilds the candidates (a new array resets per-array state
    // such as the hash ring): most store events (health counters, attributes) change nothing here.
    let changed = false;
    for (const s of servers) {
      const where = hostPort(s.serviceUrl);
      if (!where) continue;
      seen.add(s.id);
      let u = this.upstreams.get(s.id);
      const maxconn = typeof s.attributes.maxconn === 'number' ? s.attributes.maxconn : this.config.maxconn;
      if (u && (u.host !== where.host || u.port !== where.port || u.tls !== where.tls)) {
        // Moved (re-registered elsewhere): a new upstream; its metrics series carry on.
        const old = u;
        old.closeIdle();
        u = new Upstream(s.id, where.host, where.port, where.tls, s.weight, maxconn, this.maxIdle, this.networkPolicy);
        this.upstreams.set(s.id, u);
        this.outlier.forget(s.id);
        this.onRemove?.(old, u);
        changed = true;
      }
      if (!u) {
        u = new Upstream(s.id, where.host, where.port, where.tls, s.weight, maxconn, this.maxIdle, this.networkPolicy);
        this.upstreams.set(s.id, u);
        changed = true;
      }
      if (u.configuredWeight !== s.weight) {
        u.configuredWeight = s.weight;
        changed = true;
      }
      if (u.maxconn !== maxconn) {
        u.maxconn = maxconn; // more room may serve the queue (refresh drains it on a change)
        changed = true;
      }
      const placeable = isPlaceable(s);
      if (placeable !== u.placeable) {
        changed = true;
        if (placeable) {
          // Slow start after a recovery, not at the first start (HAProxy's slowstart likewise).
          if (u.everPlaceable) u.recoveredAt = now;
          // Back by its active health check: an ejection from its time down ends (Envoy's
          // successful_active_health_check_uneject_host), or a restarted backend would wait out
          // the ejection its death earned.
          this.outlier.forget(s.id);
          this.trials.delete(s.id);
        } else u.closeIdle();
        u.placeable = placeable;
      }
      if (placeable) u.everPlaceable = true;
    }
    for (const [id, u] of this.upstreams) {
      if (seen.has(id)) continue;
      u.closeIdle();
      this.upstreams.delete(id);
      this.outlier.forget(id);
      this.trials.delete(id);
      this.onRemove?.(u);
      changed = true;
    }
    if (changed) this.dirty = true;
    this.refresh(now);
  }

  /** Rebuilds the candidates when anything changed: ejections ending, slow start ramping. */
  refresh(now: number): void {
    this.now = now;
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
    this.halfOpen.clear();
    for (const u of this.upstreams.values()) {
      if (!u.placeable) continue;
      if (panic) next.push(u);
      else if (!this.outlier.isEjected(u.id, now)) {
        next.push(u);
        // Past its ejection, trial not yet sent: the next pick of it is the one trial (admits).
        if (this.outlier.halfOpen(u.id, now)) this.halfOpen.add(u.id);
      }
    }
    if (!changed && panic === this.panic && next.length === this.candidates.length && next.every((u, i) => u === this.candidates[i])) return;
    this.panic = panic;
    this.candidates = next;
    this.ordered = undefined;
    this.drainQueue();
  }

  /** A backend for a request, or undefined when none has room (then `enqueue`). */
  pick(key: string | undefined, exclude: ReadonlySet<string> | undefined): Upstream | undefined {
    const u = this.picker.pick(this.candidates, { key, random: this.random, exclude });
    if (u) this.taken(u);
    return u;
  }

  /** Seed 002's shared round-robin position (set when `sharedRoundRobin` is on and Redis is there). */
  sharedIndex: (() => Promise<number>) | undefined;
  private ordered: Upstream[] | undefined;

  /** Round-robin from a shared position `n`: the first candidate with room from n on. */
  pickAt(n: number, exclude: ReadonlySet<string> | undefined): Upstream | undefined {
    // By id: every process must count over the same order (their views list servers differently).
    const c = (this.ordered ??= [...this.candidates].sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0)));
    for (let i = 0; i < c.length; i++) {
      const u = c[(n + i) % c.length]!;
      if (u.weight > 0 && (u.maxconn === 0 || u.inflight < u.maxconn) && !exclude?.has(u.id)) {
        this.taken(u);
        return u;
      }
    }
    return undefined;
  }

  /** A specific backend (sticky cookie) if it is a candidate with room. */
  pickById(id: string): Upstream | undefined {
    const u = this.upstreams.get(id);
    if (!u || u.weight <= 0 || (u.maxconn > 0 && u.inflight >= u.maxconn) || !this.candidates.includes(u)) return undefined;
    this.taken(u);
    return u;
  }

  /** `u` was chosen for a request: counted; a half-open backend's trial leaves the candidates. */
  private taken(u: Upstream): void {
    u.inflight++;
    if (this.halfOpen.size === 0 || !this.halfOpen.delete(u.id)) return;
    // The one trial request (outlier.admits): no other request goes there until its result.
    this.outlier.admits(u.id, this.now);
    this.trials.add(u.id);
    this.candidates = this.candidates.filter((c) => c !== u);
    this.dirty = true;
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
    const ejected = this.outlier.record(u.id, ok ? 'success' : 'failure', now, this.upstreams.size) === 'ejected';
    // A trial's result (an ejected backend's results only change anything once it is half-open).
    const trial = this.trials.size > 0 && this.trials.delete(u.id);
    if (ejected) {
      this.ejections++;
      u.closeIdle();
    }
    if (ejected || trial) {
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
      this.taken(u);
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
