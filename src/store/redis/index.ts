import { createHash, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { AdminState, HealthState, LossReason, LostPlacement, Placement, ReportedLoad, Server, ServerRegistration } from '../../core/model.js';
import { explainSelection, WHY_RANKED } from '../../core/explain.js';
import { rankTop } from '../../core/policies/index.js';
import { isExpired, newPlacement, newServer, readyPlacement } from '../../core/server.js';
import type { ReleaseResult, ReserveRequest, ReserveResult, ServerPatch, StateStore, StoreEvent } from '../store.js';
import { checkIndexArgs, StoreUnavailableError } from '../store.js';
import { PoolViews, type PoolView } from '../view.js';
import { createRedisClient, describeRedis, type RedisClient, type RedisConnectionConfig } from './connection.js';

const scriptNames = ['register', 'deregister', 'update', 'reserve', 'confirm', 'release', 'expire', 'drop', 'leases', 'snapshot', 'restore'] as const;
type ScriptName = (typeof scriptNames)[number];

function loadScripts(): Record<ScriptName, string> {
  const read = (name: string) => readFileSync(new URL(`./lua/${name}.lua`, import.meta.url), 'utf8');
  const common = read('common');
  return Object.fromEntries(scriptNames.map((n) => [n, `${common}\n${read(n)}`])) as Record<ScriptName, string>;
}

/** What the Lua scripts publish on `<prefix>:{<pool>}:events`. */
type WireEvent = { seq: number } & (
  | { t: 'server'; server: Server; dropped: string[] }
  | { t: 'server-removed'; id: string; dropped: string[] }
  | { t: 'reserve'; serverId: string; reserved: number; placement: Placement }
  | { t: 'confirm'; placement: Placement }
  | { t: 'release'; id: string; serverId: string; reserved: number }
  | { t: 'drop'; serverId: string; dropped: string[] }
  | { t: 'resync' }
);

interface PoolSync {
  /** Sequence number of the last change applied to the local view. */
  applied: number;
  /** Identity of the Redis data set; a new one after a restart means the data was lost. */
  generation: string;
  resyncing: Promise<void> | undefined;
  /** A reload waiting for its time: after a failed one (backoff), or one right after another. */
  retry: { timer: NodeJS.Timeout; resolve: (p: Promise<void>) => void; promise: Promise<void> } | undefined;
  /** Reloads that failed in a row (the backoff grows with it). */
  failures: number;
  /** When the last reload ended (ms). */
  lastReload: number;
  pending: WireEvent[];
  /** Writes waiting for their own change to reach the view, in seq order. */
  waiters: { seq: number; since: number; resolve: () => void }[];
  /** One timer per pool (not one per write) that reloads the view when an event is overdue. */
  overdue: NodeJS.Timeout | undefined;
}

export interface RedisStoreOptions {
  connection: RedisConnectionConfig;
  /** Key prefix; each pool's keys are `<prefix>:{<pool>}:...`. */
  prefix?: string;
  /** The pools this instance serves; each gets its own keys, channel and local view. */
  pools: string[];
  logger?: Logger;
  random?: () => number;
  /** How long a write waits for its own event before the view is reloaded instead. */
  catchUpTimeoutMs?: number;
}

/**
 * The shared store: truth in Redis, changed only by the Lua scripts in ./lua (one atomic step
 * each), and a local view per pool for reads, kept current by the events those scripts publish.
 * Events carry a per-pool sequence number: a gap (a lost message) or a reconnect reloads the view
 * from one consistent snapshot, so a missed message is never a lost update.
 */
export class RedisStore implements StateStore {
  readonly kind = 'redis' as const;
  private readonly client: RedisClient;
  private readonly sub: RedisClient;
  private readonly views = new PoolViews();
  private readonly sync = new Map<string, PoolSync>();
  /** Event channel name → pool. */
  private readonly channels = new Map<string, string>();
  private readonly listeners = new Set<(event: StoreEvent) => void>();
  private readonly prefix: string;
  private readonly random: () => number;
  private readonly catchUpTimeoutMs: number;
  private readonly where: string;
  private started = false;
  private closing = false;
  private lastErrorLog = 0;

  constructor(private readonly options: RedisStoreOptions) {
    this.prefix = options.prefix ?? 'sb';
    this.random = options.random ?? Math.random;
    this.catchUpTimeoutMs = options.catchUpTimeoutMs ?? 2000;
    this.where = describeRedis(options.connection);
    this.client = createRedisClient(options.connection);
    this.sub = this.client.duplicate();
    const scripts = loadScripts();
    for (const name of scriptNames) this.client.defineCommand(`sb_${name}`, { numberOfKeys: 1, lua: scripts[name] });
    for (const pool of options.pools) {
      this.channels.set(this.key(pool, 'events'), pool);
      this.sync.set(pool, { applied: 0, generation: '', resyncing: undefined, retry: undefined, failures: 0, lastReload: 0, pending: [], waiters: [], overdue: undefined });
    }
  }

  async start(): Promise<void> {
    const onError = (err: Error) => this.logError(err);
    this.client.on('error', onError);
    this.sub.on('error', onError);
    try {
      await this.client.connect();
      await this.sub.connect();
    } catch (err) {
      throw new StoreUnavailableError(`cannot connect to Redis at ${this.where}: ${(err as Error).message}. Is redis-server running and REDIS_URL right?`, { cause: err });
    }
    this.sub.on('message', (channel: string, message: string) => this.onMessage(channel, message));
    await this.sub.subscribe(...this.options.pools.map((p) => this.key(p, 'events')));
    for (const pool of this.options.pools) {
      await this.client.set(this.key(pool, 'gen'), randomUUID(), 'NX');
      await this.resync(pool);
    }
    // After a reconnect: re-read the truth (and write back what Redis lost, if it restarted empty).
    this.client.on('ready', () => void this.recoverAll());
    this.sub.on('ready', () => void this.recoverAll());
    this.started = true;
  }

  async close(): Promise<void> {
    this.closing = true;
    this.listeners.clear();
    for (const s of this.sync.values()) {
      if (s.retry) clearTimeout(s.retry.timer);
      this.wake(s, true);
    }
    await Promise.allSettled([this.client.quit(), this.sub.quit()]);
    this.client.disconnect();
    this.sub.disconnect();
  }

  available(): boolean {
    return this.client.status === 'ready';
  }

  // --- servers ---

  async registerServer(pool: string, registration: ServerRegistration, now: number): Promise<{ server: Server; lost: LostPlacement[] }> {
    const server = newServer(registration, now, randomUUID());
    const [seq, json, lost] = (await this.run('register', pool, [JSON.stringify(server)])) as [number, string, string[]];
    await this.caughtUp(pool, seq);
    return { server: JSON.parse(json) as Server, lost: this.lost(lost, 'server-restarted') };
  }

  async deregisterServer(pool: string, id: string): Promise<{ server?: Server; lost: LostPlacement[] }> {
    const [seq, json, lost] = (await this.run('deregister', pool, [id])) as [number, string?, string[]?];
    if (!seq || !json) return { lost: [] };
    await this.caughtUp(pool, seq);
    return { server: JSON.parse(json) as Server, lost: this.lost(lost ?? [], 'server-deregistered') };
  }

  heartbeat(pool: string, id: string, load: ReportedLoad | undefined, now: number): Promise<Server | undefined> {
    return this.update(pool, id, ['heartbeat', now, load ? JSON.stringify(load) : '']);
  }

  setAdminState(pool: string, id: string, state: AdminState, expected?: AdminState): Promise<Server | undefined> {
    return this.update(pool, id, ['admin', state, expected ?? '']);
  }

  patchServer(pool: string, id: string, patch: ServerPatch): Promise<Server | undefined> {
    const clean: ServerPatch = {};
    if (patch.weight !== undefined) clean.weight = patch.weight;
    if (patch.capacity !== undefined) clean.capacity = patch.capacity;
    if (patch.attributes !== undefined && Object.keys(patch.attributes).length > 0) clean.attributes = patch.attributes;
    return this.update(pool, id, ['patch', JSON.stringify(clean)]);
  }

  recordHealth(pool: string, id: string, epoch: string, health: HealthState): Promise<Server | undefined> {
    return this.update(pool, id, ['health', epoch, JSON.stringify(health)]);
  }

  async releaseServerPlacements(pool: string, id: string, epoch: string, reason: LossReason): Promise<LostPlacement[]> {
    const [seq, lost] = (await this.run('drop', pool, [id, epoch])) as [number, string[]?];
    if (!seq) return [];
    await this.caughtUp(pool, seq);
    return this.lost(lost ?? [], reason);
  }

  getServer(pool: string, id: string): Server | undefined {
    return this.view(pool).servers.get(id);
  }

  listServers(pool: string): Server[] {
    return [...this.view(pool).servers.values()];
  }

  // --- placements ---

  async reserve(pool: string, request: ReserveRequest): Promise<ReserveResult> {
    const exclude = request.exclude ?? [];
    const selection = { units: request.units, region: request.region, exclude: new Set(exclude) };
    // The servers as the script will see them: an expired placement of this id it reclaims frees
    // its units first (as the memory store's selection does).
    let servers = this.listServers(pool);
    const known = this.view(pool).placements.get(request.placementId);
    const expired = known !== undefined && isExpired(known, request.now);
    if (expired) servers = servers.map((s) => (s.id === known.serverId ? { ...s, reserved: Math.max(0, s.reserved - known.units) } : s));
    // A placement the view holds live is almost always answered `existing` (every lookup of a known
    // stream comes here): no explanation is made for it. Should the view be behind and the script
    // place it after all, that placement simply carries none (readers take it as absent).
    const explain = known === undefined || expired;
    let mode: string[];
    let ranked: Server[];
    if (request.policy === 'most-free-capacity') {
      // The script chooses on the live numbers; ranked here, from the view, only to explain it.
      ranked = explain ? rankTop(request.policy, servers, selection, this.random, WHY_RANKED) : [];
      mode = ['most-free', String(exclude.length), ...exclude];
    } else {
      // Policies other than most-free choose here, from the local view, in O(n): their first
      // RANKED_CANDIDATES picks go to the script, which takes the first that is still placeable
      // and fits (so a stale view never over-books) and falls back to most-free over the live
      // numbers when none does (so a stale view never refuses a placement that fits).
      ranked = rankTop(request.policy, servers, selection, this.random, RANKED_CANDIDATES);
      mode = ['ordered', String(exclude.length), ...exclude, ...ranked.map((s) => s.id)];
    }
    // The explanation travels in the template; the script fills in the server it took, so a choice
    // on live numbers that differs from the view's ranking shows as such (whyText).
    const why = explain ? explainSelection(request.policy, servers, selection, ranked) : undefined;
    const template = JSON.stringify(newPlacement({ id: '', epoch: '' }, request, randomUUID(), why));
    const reply = (await this.run('reserve', pool, [request.placementId, request.units, request.region ?? '', template, ...mode])) as [string, string?, number?, string?];
    if (reply[0] === 'none') {
      if (reply[2]) await this.caughtUp(pool, reply[2]); // an expired placement was released
      return { outcome: 'no-capacity' };
    }
    const placement = JSON.parse(reply[1]!) as Placement;
    if (reply[0] === 'existing') return { outcome: 'existing', placement };
    await this.caughtUp(pool, reply[2]!);
    return reply[3] ? { outcome: 'reserved', placement, reclaimed: JSON.parse(reply[3]) as Placement } : { outcome: 'reserved', placement };
  }

  async confirm(pool: string, placementId: string, serverId: string, data: Record<string, unknown>, attempt?: string, pending?: Placement): Promise<Placement | undefined> {
    // The reservation as reserve() returned it, when the caller has it: the view may not hold it
    // (yet, or after a reload that failed).
    const current = pending && pending.id === placementId ? pending : this.view(pool).placements.get(placementId);
    if (!current || current.serverId !== serverId || (attempt !== undefined && current.attempt !== attempt)) return undefined;
    const ready = readyPlacement(current, data);
    const [seq] = (await this.run('confirm', pool, [placementId, serverId, JSON.stringify(ready), attempt ?? ''])) as [number, string?];
    if (!seq) return undefined;
    // Answer without waiting for our own event: the script's success proves the placement was this
    // reservation, unchanged, until change `seq`, and nothing before `seq` can touch it (a release
    // or drop would have made the confirm fail), so putting it into the view now is what applying
    // the event will do. Changes after `seq` still arrive in order. (Measured in bench:rooms.)
    const view = this.view(pool);
    const seen = view.placements.get(placementId);
    if (seen && seen.attempt === ready.attempt && seen.serverId === serverId) {
      view.putPlacement(ready);
      this.emit({ type: 'placement', pool, placement: ready });
    } else {
      await this.caughtUp(pool, seq);
    }
    return ready;
  }

  async release(pool: string, placementId: string, serverId?: string, attempt?: string): Promise<ReleaseResult> {
    const reply = (await this.run('release', pool, [placementId, serverId ?? '', attempt ?? ''])) as [string, string?, number?];
    if (reply[0] === 'not-found') return { outcome: 'not-found' };
    const placement = JSON.parse(reply[1]!) as Placement;
    if (reply[0] === 'wrong-server') return { outcome: 'wrong-server', placement };
    await this.caughtUp(pool, reply[2]!);
    return { outcome: 'released', placement };
  }

  async releaseExpired(pool: string, now: number): Promise<Placement[]> {
    // Candidates from the view (cheap, local); the script re-checks each on the live record.
    const ids: string[] = [];
    for (const p of this.view(pool).placements.values()) if (isExpired(p, now)) ids.push(p.id);
    if (ids.length === 0) return [];
    const [seq, ...released] = (await this.run('expire', pool, [now, ...ids])) as [number, ...string[]];
    if (seq) await this.caughtUp(pool, seq);
    return released.map((j) => JSON.parse(j) as Placement);
  }

  getPlacement(pool: string, id: string): Placement | undefined {
    return this.view(pool).placements.get(id);
  }

  listPlacements(pool: string, serverId?: string): Placement[] {
    const view = this.view(pool);
    return serverId === undefined ? [...view.placements.values()] : view.placementsOf(serverId);
  }

  countPlacements(pool: string, serverId?: string): number {
    return this.view(pool).countOf(serverId);
  }

  async acquireLeases(pool: string, holder: string, ids: string[], ttlMs: number): Promise<string[]> {
    if (ids.length === 0) return [];
    return (await this.run('leases', pool, [holder, Math.max(1, Math.round(ttlMs)), ...ids])) as string[];
  }

  // --- session indexes: plain keys with a TTL, read from Redis itself ---

  async setIndex(pool: string, index: string, key: string, value: string, ttlMs: number): Promise<void> {
    checkIndexArgs(index, key, { value, ttlMs });
    await this.direct(pool, (c) => c.set(this.indexKey(pool, index, key), value, 'PX', ttlMs));
  }

  async getIndex(pool: string, index: string, key: string): Promise<string | undefined> {
    checkIndexArgs(index, key);
    return (await this.direct(pool, (c) => c.get(this.indexKey(pool, index, key)))) ?? undefined;
  }

  async deleteIndex(pool: string, index: string, key: string): Promise<void> {
    checkIndexArgs(index, key);
    await this.direct(pool, (c) => c.del(this.indexKey(pool, index, key)));
  }

  subscribe(listener: (event: StoreEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  // --- internals ---

  private key(pool: string, name: string): string {
    return `${this.prefix}:{${pool}}:${name}`;
  }

  private view(pool: string): PoolView {
    if (!this.sync.has(pool)) throw new Error(`pool "${pool}" is not served by this store (configured: ${this.options.pools.join(', ')})`);
    return this.views.get(pool);
  }

  private poolSync(pool: string): PoolSync {
    const s = this.sync.get(pool);
    if (!s) throw new Error(`pool "${pool}" is not served by this store`);
    return s;
  }

  private async run(script: ScriptName, pool: string, args: (string | number)[]): Promise<unknown> {
    this.poolSync(pool);
    if (this.client.status !== 'ready') throw this.unavailable();
    const command = (this.client as unknown as Record<string, (...a: (string | number)[]) => Promise<unknown>>)[`sb_${script}`]!;
    try {
      return await command.call(this.client, this.key(pool, 'seq'), `${this.prefix}:{${pool}}`, ...args);
    } catch (err) {
      if (this.client.status !== 'ready' || isConnectionError(err)) throw this.unavailable(err);
      throw err;
    }
  }

  /**
   * `<prefix>:{<pool>}:idx:<index>:<key>`: the pool's hash tag comes first, so whatever the key
   * holds (braces included) it lands in the pool's slot. Keys outside a short, plain alphabet (or
   * long) are replaced by `#` + their SHA-256 (base64url; `#` is outside that alphabet, so a hashed
   * key never equals a plain one).
   */
  private indexKey(pool: string, index: string, key: string): string {
    const part = PLAIN_INDEX_KEY.test(key) ? key : `#${createHash('sha256').update(key, 'utf8').digest('base64url')}`;
    return `${this.prefix}:{${pool}}:idx:${index}:${part}`;
  }

  /** One plain command on a pool's keys, with the same error classification as the scripts. */
  private async direct<T>(pool: string, command: (client: RedisClient) => Promise<T>): Promise<T> {
    this.poolSync(pool);
    if (this.client.status !== 'ready') throw this.unavailable();
    try {
      return await command(this.client);
    } catch (err) {
      if (this.client.status !== 'ready' || isConnectionError(err)) throw this.unavailable(err);
      throw err;
    }
  }

  private unavailable(cause?: unknown): StoreUnavailableError {
    const why = cause instanceof Error ? `: ${cause.message}` : '';
    return new StoreUnavailableError(`state store unavailable: Redis at ${this.where} is not connected${why}; writes are refused until it is back, reads are served from this instance's last known state`, { cause });
  }

  private async update(pool: string, id: string, args: (string | number)[]): Promise<Server | undefined> {
    const [seq, json] = (await this.run('update', pool, [id, ...args])) as [number, string?];
    if (!seq || !json) return undefined;
    await this.caughtUp(pool, seq);
    return JSON.parse(json) as Server;
  }

  private lost(jsons: string[], reason: LossReason): LostPlacement[] {
    return jsons.filter(Boolean).map((j) => ({ placement: JSON.parse(j) as Placement, reason }));
  }

  /** Resolves once the local view has applied change `seq` (or was reloaded after it). */
  private caughtUp(pool: string, seq: number): Promise<void> {
    const s = this.poolSync(pool);
    if (s.applied >= seq || this.closing) return Promise.resolve();
    return new Promise((resolve) => {
      // Replies arrive in the order Redis ran the scripts, so this is almost always an append.
      let i = s.waiters.length;
      while (i > 0 && s.waiters[i - 1]!.seq > seq) i--;
      s.waiters.splice(i, 0, { seq, since: Date.now(), resolve });
      if (!s.overdue) this.watchOverdue(pool, s);
    });
  }

  /** While writes wait, checks every half timeout whether one waited too long: then reloads. */
  private watchOverdue(pool: string, s: PoolSync): void {
    s.overdue = setTimeout(() => {
      s.overdue = undefined;
      if (s.waiters.length === 0) return;
      const late = Date.now() - this.catchUpTimeoutMs;
      // The event is late or lost: reload instead of waiting longer (a reload wakes everyone).
      if (s.waiters.some((w) => w.since <= late)) void this.resync(pool);
      this.watchOverdue(pool, s);
    }, this.catchUpTimeoutMs / 2);
    s.overdue.unref();
  }

  private wake(s: PoolSync, all = false): void {
    const { waiters } = s;
    if (waiters.length === 0) return;
    let n = 0;
    if (all) n = waiters.length;
    else while (n < waiters.length && waiters[n]!.seq <= s.applied) n++;
    if (n === 0) return;
    for (const w of waiters.splice(0, n)) w.resolve();
    if (waiters.length === 0 && s.overdue) {
      clearTimeout(s.overdue);
      s.overdue = undefined;
    }
  }

  private onMessage(channel: string, message: string): void {
    const pool = this.channels.get(channel);
    if (!pool) return;
    let event: WireEvent;
    try {
      event = JSON.parse(message) as WireEvent;
    } catch {
      this.options.logger?.warn({ channel }, 'unparseable store event; reloading');
      void this.resync(pool);
      return;
    }
    this.receive(pool, event);
  }

  private receive(pool: string, event: WireEvent): void {
    const s = this.poolSync(pool);
    if (s.resyncing) {
      s.pending.push(event);
      return;
    }
    if (event.seq <= s.applied) return;
    if (event.seq > s.applied + 1 || event.t === 'resync') {
      s.pending.push(event);
      void this.resync(pool);
      return;
    }
    this.apply(pool, event);
    s.applied = event.seq;
    this.wake(s);
  }

  private apply(pool: string, e: WireEvent): void {
    const view = this.views.get(pool);
    const dropAll = (ids: string[]) => {
      for (const id of ids) {
        const placement = view.deletePlacement(id);
        if (placement) this.emit({ type: 'placement-removed', pool, placement });
      }
    };
    const setReserved = (serverId: string, reserved: number) => {
      const server = view.servers.get(serverId);
      if (!server) return;
      const next = { ...server, reserved };
      view.putServer(next);
      this.emit({ type: 'server', pool, server: next });
    };
    switch (e.t) {
      case 'server':
        dropAll(e.dropped);
        view.putServer(e.server);
        this.emit({ type: 'server', pool, server: e.server });
        break;
      case 'server-removed':
        dropAll(e.dropped);
        view.deleteServer(e.id);
        this.emit({ type: 'server-removed', pool, id: e.id });
        break;
      case 'reserve':
        view.putPlacement(e.placement);
        this.emit({ type: 'placement', pool, placement: e.placement });
        setReserved(e.serverId, e.reserved);
        break;
      case 'confirm':
        view.putPlacement(e.placement);
        this.emit({ type: 'placement', pool, placement: e.placement });
        break;
      case 'release':
        dropAll([e.id]);
        setReserved(e.serverId, e.reserved);
        break;
      case 'drop':
        dropAll(e.dropped);
        setReserved(e.serverId, 0);
        break;
      case 'resync':
        break;
    }
  }

  /**
   * Reloads a pool's view from one snapshot, then applies what arrived meanwhile. Reloads are
   * spaced: one right after another waits MIN_RELOAD_GAP_MS, and after a failed one the next waits
   * longer each time (up to 5 s), so a reload that keeps failing (or a stream of events that keeps
   * showing gaps) cannot turn into a loop of snapshot scripts.
   */
  private resync(pool: string): Promise<void> {
    const s = this.poolSync(pool);
    if (s.resyncing) return s.resyncing;
    if (s.retry) return s.retry.promise;
    const wait = s.failures > 0 ? Math.min(MAX_RELOAD_BACKOFF_MS, 100 * 2 ** (s.failures - 1)) : s.lastReload + MIN_RELOAD_GAP_MS - Date.now();
    if (wait <= 0 || this.closing) return this.reloadNow(pool, s);
    let resolve!: (p: Promise<void>) => void;
    const promise = new Promise<void>((r) => (resolve = r));
    const timer = setTimeout(() => {
      s.retry = undefined;
      resolve(this.reloadNow(pool, s));
    }, wait);
    timer.unref();
    s.retry = { timer, resolve, promise };
    return promise;
  }

  /** Runs a waiting reload now (after a reconnect there is no reason to wait). */
  private reloadSoon(pool: string, s: PoolSync): Promise<void> {
    s.failures = 0;
    s.lastReload = 0;
    const retry = s.retry;
    if (!retry) return this.resync(pool);
    clearTimeout(retry.timer);
    s.retry = undefined;
    const p = this.reloadNow(pool, s);
    retry.resolve(p);
    return p;
  }

  private reloadNow(pool: string, s: PoolSync): Promise<void> {
    if (s.resyncing) return s.resyncing;
    s.resyncing = (async () => {
      let fresh: boolean | undefined;
      try {
        fresh = await this.reload(pool, s);
        s.failures = 0;
      } catch (err) {
        s.failures++;
        this.logError(err as Error);
      } finally {
        s.resyncing = undefined;
        s.lastReload = Date.now();
      }
      this.wake(s, true);
      const pending = s.pending.splice(0);
      // A failed reload is retried (after the backoff) whether or not anything asks again: an
      // instance must not stay on a stale view because no event or write happened to follow.
      if (fresh === undefined && !this.closing) void this.resync(pool);
      // After a failed reload the events that arrived meanwhile are dropped: the next reload's
      // snapshot holds their effect, and keeping them risks applying them to data they do not
      // belong to (Redis may have restarted meanwhile). The same after a change of data set: an
      // event of the old one may carry a higher sequence number than the new one has reached.
      if (fresh !== false) return;
      for (const event of pending.sort((a, b) => a.seq - b.seq)) this.receive(pool, event);
    })();
    return s.resyncing;
  }

  /**
   * Loads the pool from one snapshot into the view. If Redis lost data this instance had — it came
   * back empty (a new generation), or older (the same generation at a lower sequence number: an
   * old dump, a failover that lost writes) — writes back what this instance knew first.
   * Resolves true when the data set changed under the view (events from before must be dropped).
   */
  private async reload(pool: string, s: PoolSync): Promise<boolean> {
    let snap = await this.snapshot(pool);
    const view = this.views.get(pool);
    let changed = false;
    const known = s.generation !== '' && view.servers.size > 0;
    const mode = !known ? undefined : snap.generation !== s.generation ? 'union' : snap.seq < s.applied ? 'replace' : undefined;
    if (mode) {
      // A replace that finds the data already replaced (another instance was first) adds ours on top.
      if (!(await this.restore(pool, s, mode, snap.generation)) && mode === 'replace') await this.restore(pool, s, 'union', snap.generation);
      snap = await this.snapshot(pool);
      changed = true;
    } else if (snap.generation === '') {
      await this.client.set(this.key(pool, 'gen'), s.generation || randomUUID(), 'NX');
      snap = await this.snapshot(pool);
    }
    if (s.generation !== '' && snap.generation !== s.generation) changed = true;
    view.clear();
    for (const server of snap.servers) view.putServer(server);
    for (const placement of snap.placements) view.putPlacement(placement);
    s.applied = snap.seq;
    s.generation = snap.generation;
    this.emit({ type: 'resync', pool });
    return changed;
  }

  /** Writes this instance's view back to Redis (restore.lua: union or replace). */
  private async restore(pool: string, s: PoolSync, mode: 'union' | 'replace', seen: string): Promise<boolean> {
    const view = this.views.get(pool);
    const servers = [...view.servers.values()];
    const placements = [...view.placements.values()];
    this.options.logger?.warn(
      { pool, servers: servers.length, placements: placements.length, mode, applied: s.applied },
      mode === 'union'
        ? 'Redis lost its data (restart without persistence?): restoring what this instance knew'
        : 'Redis holds older data than this instance had seen (restored from an old dump, or a failover lost writes): replacing it with what this instance knew',
    );
    const generation = mode === 'replace' ? randomUUID() : s.generation;
    const [seq, skipped] = (await this.run('restore', pool, [
      mode,
      generation,
      seen,
      s.applied,
      servers.length,
      ...servers.map((x) => JSON.stringify(x)),
      ...placements.map((x) => JSON.stringify(x)),
    ])) as [number, number];
    if (skipped > 0) this.options.logger?.error({ pool, skipped }, 'restore skipped records Redis could not decode');
    return seq > 0;
  }

  private async snapshot(pool: string): Promise<{ seq: number; generation: string; servers: Server[]; placements: Placement[] }> {
    const [seq, generation, count, ...rest] = (await this.run('snapshot', pool, [])) as [number, string, number, ...string[]];
    return {
      seq,
      generation,
      servers: rest.slice(0, count).map((j) => JSON.parse(j) as Server),
      placements: rest.slice(count).map((j) => JSON.parse(j) as Placement),
    };
  }

  private async recoverAll(): Promise<void> {
    if (!this.started || this.closing || this.client.status !== 'ready') return;
    for (const pool of this.options.pools) {
      try {
        await this.recover(pool);
      } catch (err) {
        this.logError(err as Error);
      }
    }
  }

  /**
   * After a reconnect: drop events buffered before it (the reload's snapshot holds their effect)
   * and reload at once; the reload notices whether Redis lost data and writes back what it must.
   */
  private recover(pool: string): Promise<void> {
    const s = this.poolSync(pool);
    s.pending.length = 0;
    return this.reloadSoon(pool, s);
  }

  private emit(event: StoreEvent): void {
    for (const listener of this.listeners) listener(event);
  }

  private logError(err: Error): void {
    const now = Date.now();
    if (now - this.lastErrorLog < 5000 || this.closing) return;
    this.lastErrorLog = now;
    this.options.logger?.error({ err: err.message, redis: this.where }, 'Redis error (the client keeps reconnecting)');
  }
}

const MIN_RELOAD_GAP_MS = 100;
/** Index keys used as they are in Redis key names; any other is hashed. */
const PLAIN_INDEX_KEY = /^[A-Za-z0-9._~/:@-]{1,200}$/;
/** Candidates a non-default policy sends to reserve.lua, best first. */
const RANKED_CANDIDATES = 4;
const MAX_RELOAD_BACKOFF_MS = 5000;

/** Redis error replies that mean "not now, this node cannot serve": the first word is Redis's error code. */
const unavailableReplies = new Set(['LOADING', 'READONLY', 'MASTERDOWN', 'CLUSTERDOWN', 'TRYAGAIN', 'BUSY']);

/**
 * Whether a failed command means "Redis cannot serve right now" (answer 503) rather than a bug
 * (500), by the error's class: an error reply from Redis (ioredis's ReplyError) is a bug unless its
 * code word says the node cannot serve now; anything else a command fails with comes from the
 * connection (socket errors, ioredis's "stream not writeable" while a failover is under way,
 * MaxRetriesPerRequestError, a closed connection).
 */
function isConnectionError(err: unknown): boolean {
  const e = err as { name?: unknown; message?: unknown };
  if (e?.name === 'ReplyError') return typeof e.message === 'string' && unavailableReplies.has(e.message.split(' ', 1)[0]!);
  return true;
}
