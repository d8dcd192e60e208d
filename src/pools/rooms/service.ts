import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { Config } from '../../config/schema.js';
import { roomUnits, sfuCapacity } from '../../core/capacity.js';
import type { LostPlacement, Placement, Server } from '../../core/model.js';
import { AppError, notFound } from '../../errors.js';
import type { Metrics } from '../../metrics/registry.js';
import { agentAttributes } from '../../probes/agent-check.js';
import { operatorAdminState } from '../admin.js';
import type { NetworkPolicy } from '../../security/network-policy.js';
import { StoreUnavailableError, type StateStore } from '../../store/store.js';
import type { Notifier } from '../notifier.js';
import { describeFailure, MediaClient } from './media-client.js';

export const ROOMS_POOL = 'rooms';

const shuttingDown = () => new AppError(503, 'shutting_down', 'this Switchboard instance is shutting down; retry (another instance, or this one after its restart, will place the room)');

type Observer = { observe(value: number): void };

export interface RegisterInput {
  serverId: string;
  serviceUrl: string;
  workers: number;
  /** Overrides `workers × consumersPerWorker`. */
  capacity?: number;
  region?: string;
  labels?: Record<string, string>;
  wsUrl?: string;
  healthPath?: string;
  weight?: number;
  /** HAProxy-style agent (probes/agent-check.ts): port, host (default: serviceUrl's), agent-send string. */
  agentPort?: number;
  agentHost?: string;
  agentSend?: string;
}

export interface CreateRoomInput {
  roomId?: string;
  eventNotificationUri?: string;
  maxPeerCount?: number;
  region?: string;
}

export type RoomAnswer = Record<string, unknown>;

export interface RoomServiceDeps {
  store: StateStore;
  config: Config['rooms'];
  notifier: Notifier;
  metrics: Metrics;
  logger?: Logger;
  now?: () => number;
  /** This instance's identity: the owner recorded on the placements it creates. */
  instanceId?: string;
  /** SSRF guard for connections to media servers (security.allowedNetworks). */
  networkPolicy?: NetworkPolicy;
}

/** Why a placement being created ends early: this instance is shutting down. */
class ShuttingDown extends Error {}

/**
 * Rooms on SFUs (seed 000): servers register with a number of workers, rooms are placed on the
 * healthy, active server with the most free capacity, created there, and kept there until closed.
 */
export class RoomService {
  private readonly inflight = new Map<string, Promise<RoomAnswer>>();
  private readonly instanceId: string;
  private sweeper: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;
  private closing = false;
  /** Requests waiting for another instance's placement: shutdown answers them. */
  private readonly waiting = new Set<(err: Error) => void>();
  /** Awaited before a room's answer goes out (e.g. HAProxy mode: until its room map holds it). */
  private beforeAnswer: ((roomId: string) => Promise<void>) | undefined;
  private readonly now: () => number;
  private readonly media: MediaClient;
  // Metric children bound once: a labelled observe() hashes its labels on every call.
  private readonly timings: { ok: Observer; failed: Observer };
  private readonly created: { inc(): void };
  private readonly existing: { inc(): void };

  constructor(private readonly d: RoomServiceDeps) {
    this.now = d.now ?? Date.now;
    this.instanceId = d.instanceId ?? randomUUID();
    this.media = new MediaClient({ timeoutMs: d.config.createTimeoutMs, ...(d.networkPolicy ? { networkPolicy: d.networkPolicy } : {}) });
    this.timings = {
      ok: d.metrics.placementDuration.labels({ pool: ROOMS_POOL, outcome: 'ok' }),
      failed: d.metrics.placementDuration.labels({ pool: ROOMS_POOL, outcome: 'failed' }),
    };
    this.created = d.metrics.placements.labels({ pool: ROOMS_POOL, outcome: 'created' });
    this.existing = d.metrics.placements.labels({ pool: ROOMS_POOL, outcome: 'existing' });
  }

  /**
   * How long a placement may stay pending: the media server's whole answer is bounded by
   * createTimeoutMs, the grace covers the confirm round trip and clocks that differ between
   * instances. Past it any instance may reclaim the placement.
   */
  private get pendingTtlMs(): number {
    return this.d.config.createTimeoutMs + this.d.config.pendingGraceMs;
  }

  /**
   * Starts reclaiming placements left pending by a dead owner (an instance killed during
   * creation, or cut off from Redis between reserve and confirm): every instance sweeps, and each
   * expired placement is released once. A request for such a room reclaims it at once too.
   */
  start(): void {
    const every = Math.max(100, Math.min(5000, Math.floor(this.pendingTtlMs / 2)));
    this.sweeper = setInterval(() => {
      if (this.sweeping || !this.d.store.available()) return;
      this.sweeping = this.sweepExpired()
        .then(() => undefined)
        .catch((err: Error) => this.d.logger?.warn({ err: err.message }, 'reclaiming expired placements failed; retrying'))
        .finally(() => (this.sweeping = undefined));
    }, every);
    this.sweeper.unref();
  }

  /** Releases placements pending past their deadline; returns how many. */
  async sweepExpired(): Promise<number> {
    const expired = await this.d.store.releaseExpired(ROOMS_POOL, this.now());
    for (const p of expired) this.reclaimed(p);
    return expired.length;
  }

  private reclaimed(p: Placement): void {
    this.d.metrics.placementsLost.inc({ pool: ROOMS_POOL, reason: 'pending-expired' });
    this.d.logger?.warn({ roomId: p.id, serverId: p.serverId, owner: p.owner }, 'room left pending past its deadline by its owner; its units are released');
  }

  /**
   * Graceful shutdown, step one: no new attempt starts, and attempts still waiting for a media
   * server after `graceMs` are cut short. Each request under way ends with its answer or with a
   * JSON 503, and its placement is confirmed or released — none is left pending.
   */
  async shutdown(graceMs: number): Promise<void> {
    this.closing = true;
    clearInterval(this.sweeper);
    await this.sweeping;
    if (this.inflight.size === 0) return;
    const timer = setTimeout(() => {
      this.media.cancelAll(new ShuttingDown('Switchboard is shutting down'));
      for (const cancel of [...this.waiting]) cancel(shuttingDown());
    }, graceMs);
    await Promise.allSettled([...this.inflight.values()]);
    clearTimeout(timer);
  }

  /** Closes the connections kept open to media servers. */
  close(): Promise<void> {
    clearInterval(this.sweeper);
    return this.media.close();
  }

  async register(input: RegisterInput): Promise<Server> {
    const capacity = input.capacity ?? sfuCapacity(input.workers, this.d.config.consumersPerWorker);
    const { server, lost } = await this.d.store.registerServer(
      ROOMS_POOL,
      {
        id: input.serverId,
        kind: 'sfu',
        serviceUrl: input.serviceUrl,
        capacity,
        endpoints: input.wsUrl ? { ws: input.wsUrl } : {},
        attributes: { workers: input.workers, ...agentAttributes(input, input.weight ?? 100, capacity) },
        initialHealth: 'healthy',
        ...(input.region !== undefined ? { region: input.region } : {}),
        ...(input.labels !== undefined ? { labels: input.labels } : {}),
        ...(input.healthPath !== undefined ? { healthPath: input.healthPath } : {}),
        ...(input.weight !== undefined ? { weight: input.weight } : {}),
      },
      this.now(),
    );
    this.lost(lost);
    this.pruneClients();
    return server;
  }

  async heartbeat(serverId: string, load: Record<string, number> | undefined): Promise<Server> {
    let reported: Record<string, number> | undefined;
    if (load) {
      reported = { ...load };
      if (load.consumers !== undefined) reported.units = load.consumers;
    }
    const server = await this.d.store.heartbeat(ROOMS_POOL, serverId, reported, this.now());
    if (!server) throw new AppError(404, 'unknown_server', `server "${serverId}" is not registered: POST /register first`, { field: 'serverId', reason: 'not registered' });
    return server;
  }

  async deregister(serverId: string): Promise<Server> {
    const { server, lost } = await this.d.store.deregisterServer(ROOMS_POOL, serverId);
    if (!server) throw notFound('server', 'id', serverId);
    this.lost(lost);
    this.pruneClients();
    return server;
  }

  async setAdminState(serverId: string, state: Server['adminState']): Promise<Server> {
    const server = await operatorAdminState(this.d.store, ROOMS_POOL, serverId, state);
    if (!server) throw notFound('server', 'id', serverId);
    return server;
  }

  listServers(): Server[] {
    return this.d.store.listServers(ROOMS_POOL);
  }

  getServer(serverId: string): Server {
    const server = this.d.store.getServer(ROOMS_POOL, serverId);
    if (!server) throw notFound('server', 'id', serverId);
    return server;
  }

  roomCount(serverId: string): number {
    return this.d.store.countPlacements(ROOMS_POOL, serverId);
  }

  getRoom(roomId: string): Placement {
    const room = this.d.store.getPlacement(ROOMS_POOL, roomId);
    if (!room) throw notFound('room', 'roomId', roomId);
    return room;
  }

  /**
   * Places a room, or returns the existing placement of that roomId. Concurrent requests for one
   * roomId on this instance share one creation; on other instances they wait for it.
   */
  /**
   * Makes every room answer wait for `barrier` first: a data plane that routes by room (HAProxy
   * mode) must know where the room is before the client, who connects right after, does.
   */
  answerAfter(barrier: (roomId: string) => Promise<void>): void {
    this.beforeAnswer = barrier;
  }

  createRoom(input: CreateRoomInput): Promise<RoomAnswer> {
    const roomId = input.roomId ?? randomUUID();
    const answer = this.answer(roomId, input.roomId === undefined, input);
    const barrier = this.beforeAnswer;
    return barrier ? answer.then(async (a) => (await barrier(roomId), a)) : answer;
  }

  private answer(roomId: string, generated: boolean, input: CreateRoomInput): Promise<RoomAnswer> {
    // A room that is ready answers from the view: no store round trip, and joins keep working
    // while Redis is unreachable (seed-000 clients join with the same POST).
    const ready = generated ? undefined : this.d.store.getPlacement(ROOMS_POOL, roomId);
    if (ready?.state === 'ready' && ready.data) {
      this.existing.inc();
      return Promise.resolve(ready.data);
    }
    const running = this.inflight.get(roomId);
    if (running) return running;
    if (this.closing) return Promise.reject(shuttingDown());
    const p = this.timedPlace(roomId, input);
    this.inflight.set(roomId, p);
    return p;
  }

  private async timedPlace(roomId: string, input: CreateRoomInput): Promise<RoomAnswer> {
    const started = performance.now();
    try {
      const answer = await this.place(roomId, input);
      this.timings.ok.observe((performance.now() - started) / 1000);
      return answer;
    } catch (err) {
      this.d.metrics.placements.inc({ pool: ROOMS_POOL, outcome: 'failed' });
      this.timings.failed.observe((performance.now() - started) / 1000);
      if (err instanceof StoreUnavailableError) this.d.metrics.placementFailures.inc({ pool: ROOMS_POOL, reason: 'store_unavailable' });
      throw err;
    } finally {
      this.inflight.delete(roomId);
    }
  }

  /** Drops kept-open connections to media servers that are no longer registered. */
  private pruneClients(): void {
    this.media.prune(this.d.store.listServers(ROOMS_POOL).map((s) => s.serviceUrl));
  }

  async closeRoom(serverId: string, roomId: string): Promise<Placement> {
    const result = await this.d.store.release(ROOMS_POOL, roomId, serverId);
    if (result.outcome === 'not-found') throw notFound('room', 'roomId', roomId);
    if (result.outcome === 'wrong-server') {
      throw new AppError(409, 'wrong_server', `room "${roomId}" is placed on "${result.placement.serverId}", not on "${serverId}"`, {
        field: 'serverId',
        reason: 'room is on another server',
      });
    }
    return result.placement;
  }

  /**
   * Releases placements whose server went away and tells their owners. A placement still pending
   * is not announced: the request creating it is still under way, and it either succeeds on
   * another server or fails — a room-lost for it would contradict that answer.
   */
  lost(lost: LostPlacement[]): void {
    for (const { placement, reason } of lost) {
      if (placement.state === 'pending') {
        this.d.logger?.info({ roomId: placement.id, serverId: placement.serverId, reason }, 'server left while a room was being created there');
        continue;
      }
      this.d.metrics.placementsLost.inc({ pool: ROOMS_POOL, reason });
      this.d.logger?.warn({ roomId: placement.id, serverId: placement.serverId, reason }, 'room lost');
      if (placement.notifyUri) {
        this.d.notifier.send({ url: placement.notifyUri, body: { event: 'room-lost', roomId: placement.id, serverId: placement.serverId, reason } });
      }
    }
  }

  private async place(roomId: string, input: CreateRoomInput): Promise<RoomAnswer> {
    const { store, config } = this.d;
    const maxPeerCount = input.maxPeerCount ?? config.defaultMaxPeerCount;
    const units = roomUnits(maxPeerCount, config.consumersPerPeerPair);
    const deadline = this.now() + config.createTimeoutMs * (config.maxAttempts + 1);
    let existingRounds = 0;
    const exclude: string[] = [];
    const failures: { serverId: string; error: string }[] = [];
    while (failures.length < config.maxAttempts) {
      if (this.closing) throw shuttingDown();
      const result = await store.reserve(ROOMS_POOL, {
        owner: this.instanceId,
        pendingTtlMs: this.pendingTtlMs,
        placementId: roomId,
        units,
        policy: config.policy,
        exclude,
        now: this.now(),
        attributes: { maxPeerCount, ...(input.region ? { region: input.region } : {}) },
        ...(input.region ? { region: input.region } : {}),
        ...(input.eventNotificationUri ? { notifyUri: input.eventNotificationUri } : {}),
      });
      if (result.outcome === 'existing') {
        const answer = await this.awaitReady(result.placement, deadline);
        if (answer) {
          this.existing.inc();
          return answer;
        }
        // Its creation failed (or its owner died) meanwhile: try to place it ourselves — after a
        // short pause when this repeats, so a view that lags cannot spin this loop against Redis.
        if (++existingRounds > 1) {
          if (this.now() >= deadline) throw new AppError(504, 'placement_timeout', `room "${roomId}" is still being created by another instance; try again`);
          await new Promise((r) => setTimeout(r, Math.min(500, 25 * 2 ** Math.min(existingRounds, 5))));
        }
        continue;
      }
      if (result.outcome === 'no-capacity') {
        this.d.metrics.placementFailures.inc({ pool: ROOMS_POOL, reason: 'no_capacity' });
        if (failures.length > 0) break;
        throw new AppError(503, 'no_capacity', `no healthy, active server has room for ${units} consumers (maxPeerCount ${maxPeerCount})`, {
          units,
        });
      }
      const { placement } = result;
      if (result.reclaimed) this.reclaimed(result.reclaimed);
      const server = store.getServer(ROOMS_POOL, placement.serverId);
      try {
        if (!server) throw new Error('server deregistered during placement');
        const body = { maxPeerCount, ...(input.eventNotificationUri ? { eventNotificationUri: input.eventNotificationUri } : {}) };
        const answer = await this.media.createRoom(server.serviceUrl, roomId, body);
        if (!(await store.confirm(ROOMS_POOL, roomId, placement.serverId, answer, placement.attempt, placement))) throw new Error('server left the pool while the room was created');
        this.created.inc();
        return answer;
      } catch (err) {
        // Redis unreachable: the placement stays pending, and is reclaimed after its deadline.
        if (err instanceof StoreUnavailableError) throw err;
        if (this.closing) {
          await store.release(ROOMS_POOL, roomId, placement.serverId, placement.attempt);
          throw shuttingDown();
        }
        const error = describeFailure(err, config.createTimeoutMs);
        failures.push({ serverId: placement.serverId, error });
        exclude.push(placement.serverId);
        this.d.metrics.placementFailures.inc({ pool: ROOMS_POOL, reason: 'server_error' });
        this.d.logger?.warn({ roomId, serverId: placement.serverId, error }, 'room creation failed on server; trying another');
        await store.release(ROOMS_POOL, roomId, placement.serverId, placement.attempt);
      }
    }
    throw new AppError(502, 'room_create_failed', `no media server accepted room "${roomId}"`, { attempts: failures });
  }

  /**
   * Waits until a placement being created by another instance is ready. Undefined if it was
   * released instead (its creation failed there), so the caller can place it itself. (Requests
   * for the same roomId on this instance never get here: createRoom shares one promise.)
   */
  private awaitReady(placement: Placement, deadline: number): Promise<RoomAnswer | undefined> {
    if (placement.state === 'ready' && placement.data) return Promise.resolve(placement.data);
    // Past the placement's own deadline its owner is presumed gone: stop waiting and reclaim it.
    const reclaimAt = placement.deadline !== undefined ? placement.deadline + 1 : Infinity;
    return new Promise((resolve, reject) => {
      const done = (fn: () => void) => {
        clearTimeout(timer);
        unsubscribe();
        this.waiting.delete(cancel);
        fn();
      };
      const cancel = (err: Error) => done(() => reject(err));
      const timer = setTimeout(
        () =>
          done(() =>
            reclaimAt <= deadline ? resolve(undefined) : reject(new AppError(504, 'placement_timeout', `room "${placement.id}" is still being created by another instance; try again`)),
          ),
        Math.max(0, Math.min(deadline, reclaimAt) - this.now()),
      );
      // `gone`: this reservation was seen removed (or the view reloaded without it). A placement
      // merely missing from this instance's view (its reserve event not here yet) is waited for.
      const check = (gone: boolean) => {
        const current = this.d.store.getPlacement(ROOMS_POOL, placement.id);
        if (current?.state === 'ready' && current.data) return done(() => resolve(current.data));
        if (current && current.attempt !== placement.attempt) return done(() => resolve(undefined)); // replaced
        if (!current && gone) done(() => resolve(undefined));
      };
      const unsubscribe = this.d.store.subscribe((e) => {
        if (e.type === 'resync') check(true);
        else if ((e.type === 'placement' || e.type === 'placement-removed') && e.placement.id === placement.id) check(e.type === 'placement-removed');
      });
      this.waiting.add(cancel);
      check(false);
    });
  }

}
