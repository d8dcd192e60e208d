import type { Logger } from 'pino';
import type { Placement, Server } from '../../core/model.js';
import { AppError } from '../../errors.js';
import type { StateStore } from '../../store/store.js';
import { ORIGINS_POOL } from './service.js';
import { hasControl } from './stream-key.js';

export type LocateMode = 'publish' | 'play';

export interface StreamServiceDeps {
  store: StateStore;
  /** This instance (recorded as the mapping's owner). */
  instanceId: string;
  logger?: Logger;
  now?: () => number;
  /** For the fallback among registered origins when none is alive. */
  random?: () => number;
  /** How long an HLS/WebRTC session index lives without being used (SRS: 120 s). */
  sessionTtlMs?: number;
}

/** SRS's proxy keeps HLS and WebRTC session state for 120 s, renewed on each request. */
export const SESSION_TTL_MS = 120_000;
/** How long a mapping may stay unconfirmed before another locate reclaims it (its maker died). */
export const PENDING_TTL_MS = 10_000;
/** Index names in the origins pool (StateStore.setIndex). */
const SPBHID_INDEX = 'spbhid';
const UFRAG_INDEX = 'ufrag';
const MAX_SESSION_ID = 256;
/** How long a mapping's origin may be missing from this instance's view before it counts as gone. */
const VIEW_LAG_MS = 500;
/** Publish rounds (release a dead mapping, pick again) before giving up. */
const MAX_ROUNDS = 4;

/**
 * Stream-sticky origin selection (seed 003): a stream (`vhost/app/stream`, see stream-key.ts) is
 * mapped to one origin the first time it is asked for, and every later request — on any instance
 * sharing the store — goes to that origin.
 *
 * A mapping is a placement of one unit in the `origins` pool with the stream key as its id, made
 * by `store.reserve` (pick and map in one atomic step: when two instances race on a new stream,
 * one maps it and the other gets `existing`, so a stream is never split) and confirmed at once.
 * The pick is `random` among alive origins (active, healthy), as SRS's proxy does; origins register
 * without a capacity (UNBOUNDED), so capacity never refuses. (Power-of-two-choices on reported
 * load would spread better once origins report `units`; random is SRS's behaviour and enough.)
 *
 * A mapping lives until `forget` (unpublish), its origin re-registers with other endpoints or is
 * deregistered (the store drops its placements), or a publish finds its origin dead: then the
 * mapping is released and the stream mapped anew. Players of a stream whose origin is dead get 503
 * `origin_unavailable` at once — the stream is not there to play anywhere else.
 */
export class StreamService {
  private readonly now: () => number;
  private readonly random: () => number;
  readonly sessionTtlMs: number;

  constructor(private readonly d: StreamServiceDeps) {
    this.now = d.now ?? Date.now;
    this.random = d.random ?? Math.random;
    this.sessionTtlMs = d.sessionTtlMs ?? SESSION_TTL_MS;
    if (!Number.isSafeInteger(this.sessionTtlMs) || this.sessionTtlMs < 1) throw new RangeError('sessionTtlMs: must be an integer >= 1');
  }

  /**
   * The origin for a stream: its mapped origin, or a newly mapped alive one. When the mapped origin
   * is dead (unhealthy, in maintenance, or gone): `publish` maps the stream anew, `play` throws 503
   * `origin_unavailable`. With no alive origin at all: any registered one, unmapped (SRS's
   * fallback); none registered: 503 `no_origin`.
   */
  async locate(key: string, mode: LocateMode): Promise<Server> {
    const { store } = this.d;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      // A deadline on the pending mapping: an instance killed between reserve and confirm leaves
      // nothing stuck, the next locate of the stream reclaims it (reserve.lua does, atomically).
      const result = await store.reserve(ORIGINS_POOL, { placementId: key, units: 1, policy: 'random', now: this.now(), owner: this.d.instanceId, pendingTtlMs: PENDING_TTL_MS });
      if (result.outcome === 'no-capacity') return this.anyRegistered(key);
      const { placement } = result;
      if (result.outcome === 'reserved') {
        // Ready at once: the mapping is the whole placement (nothing to create on the origin).
        await store.confirm(ORIGINS_POOL, key, placement.serverId, {}, placement.attempt, placement);
        const server = await this.serverOf(placement);
        if (server) {
          this.d.logger?.debug({ stream: key, origin: server.id, mode }, 'stream mapped to origin');
          return server;
        }
        continue; // its origin left in between: pick again
      }
      const server = await this.serverOf(placement);
      if (server && serves(server)) return server;
      if (mode === 'play') {
        throw new AppError(503, 'origin_unavailable', `stream ${key} is on origin ${placement.serverId}, which is ${server ? describe(server) : 'gone'}; retry once it is published again`, {
          stream: key,
          origin: placement.serverId,
        });
      }
      // Publish: the stream starts anew elsewhere. Only this mapping (attempt): a concurrent
      // publisher that already moved it keeps its new one.
      const released = await store.release(ORIGINS_POOL, key, placement.serverId, placement.attempt);
      if (released.outcome === 'released') {
        this.d.logger?.info({ stream: key, origin: placement.serverId }, 'stream publish: its origin is not alive, mapping it anew');
      }
    }
    throw new AppError(503, 'origin_unavailable', `stream ${key}: could not map it to an alive origin (origins changing too fast); retry`, { stream: key });
  }

  /**
   * The origin serving a stream now, from this instance's view: mapped, ready, same registration,
   * alive. Never maps anything (a media packet must not place a stream); undefined otherwise.
   */
  servingOrigin(key: string): Server | undefined {
    const p = this.d.store.getPlacement(ORIGINS_POOL, key);
    if (!p || p.state !== 'ready') return undefined;
    const server = this.d.store.getServer(ORIGINS_POOL, p.serverId);
    return server && server.epoch === p.serverEpoch && serves(server) ? server : undefined;
  }

  /** The origin a stream is mapped to in this instance's view (no mapping made). */
  mappedOrigin(key: string): string | undefined {
    return this.d.store.getPlacement(ORIGINS_POOL, key)?.serverId;
  }

  /** Releases a stream's mapping (an unpublish); false when it was not mapped. */
  async forget(key: string): Promise<boolean> {
    return (await this.d.store.release(ORIGINS_POOL, key)).outcome === 'released';
  }

  // --- sessions (SRS's proxy: HLS by SPBHID, WebRTC by ufrag; 120 s, renewed on use) ---

  /** Remembers an HLS session (SRS Proxy Backend HLS ID) of a stream. */
  async indexHls(key: string, spbhid: string): Promise<void> {
    return this.d.store.setIndex(ORIGINS_POOL, SPBHID_INDEX, sessionId('spbhid', spbhid), key, this.sessionTtlMs);
  }

  /** The stream of an HLS session, renewing it; undefined when unknown or expired. */
  async streamBySpbhid(spbhid: string): Promise<string | undefined> {
    return this.lookup(SPBHID_INDEX, sessionId('spbhid', spbhid));
  }

  /** Remembers a WebRTC session (its ICE ufrag) of a stream. */
  async indexRtc(key: string, ufrag: string): Promise<void> {
    return this.d.store.setIndex(ORIGINS_POOL, UFRAG_INDEX, sessionId('ufrag', ufrag), key, this.sessionTtlMs);
  }

  /** The stream of a WebRTC session, renewing it; undefined when unknown or expired. */
  async streamByUfrag(ufrag: string): Promise<string | undefined> {
    return this.lookup(UFRAG_INDEX, sessionId('ufrag', ufrag));
  }

  private async lookup(index: string, id: string): Promise<string | undefined> {
    const key = await this.d.store.getIndex(ORIGINS_POOL, index, id);
    if (key !== undefined) await this.d.store.setIndex(ORIGINS_POOL, index, id, key, this.sessionTtlMs);
    return key;
  }

  /**
   * The placement's origin from the view. A mapping made on another instance may name an origin
   * this instance's view has not received yet (they arrive within milliseconds): wait a little.
   */
  private async serverOf(placement: Placement): Promise<Server | undefined> {
    const deadline = Date.now() + VIEW_LAG_MS;
    for (;;) {
      const server = this.d.store.getServer(ORIGINS_POOL, placement.serverId);
      if (server && server.epoch === placement.serverEpoch) return server;
      if (Date.now() >= deadline) return undefined;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** SRS's fallback when no origin is alive: any registered one, uniformly, without a mapping. */
  private anyRegistered(key: string): Server {
    const servers = this.d.store.listServers(ORIGINS_POOL).filter((s) => s.kind === 'origin');
    if (servers.length === 0) throw new AppError(503, 'no_origin', 'no origin is registered: point SRS heartbeat at POST /api/v1/srs/register', { stream: key });
    const server = servers[Math.min(servers.length - 1, Math.floor(this.random() * servers.length))]!;
    this.d.logger?.warn({ stream: key, origin: server.id, registered: servers.length }, 'no origin is alive: using any registered one');
    return server;
  }
}

/**
 * Whether a mapped origin keeps serving its streams: healthy and not in maintenance. A draining
 * origin keeps the streams it has (drain stops only new mappings, which the store's selection
 * already refuses), so a publisher reconnecting during a drain does not split its stream.
 */
function serves(server: Server): boolean {
  return server.health.status === 'healthy' && server.adminState !== 'maint';
}

function describe(server: Server): string {
  if (server.health.status !== 'healthy') return server.health.status;
  return `in ${server.adminState}`;
}

function sessionId(field: string, id: string): string {
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_SESSION_ID || hasControl(id)) {
    throw new AppError(400, 'bad_request', `${field} must be 1 to ${MAX_SESSION_ID} characters without control characters`, { field, reason: 'invalid' });
  }
  return id;
}
