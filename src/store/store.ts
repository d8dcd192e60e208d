import type { AdminState, HealthState, LostPlacement, Placement, ReportedLoad, Server, ServerRegistration } from '../core/model.js';
import type { PolicyName } from '../core/policies/index.js';

/**
 * The state store: the one place where servers and placements live. `memory` serves one instance;
 * `redis` lets any number of instances share the same truth. Both pass the same contract suite
 * (test/contract/store.contract.ts).
 *
 * Every method takes a pool name (`rooms`, `turn`, ...): the pools are independent, and in Redis
 * each pool's keys share one hash tag so every script runs in one Cluster slot.
 *
 * Writes are atomic (one Lua script in Redis). Reads are synchronous and answered from the
 * instance's local view, which the store keeps current (pub/sub in Redis); a write resolves only
 * once its own effect is visible to reads on this instance.
 */
export interface StateStore {
  readonly kind: 'memory' | 'redis';

  /** Connects and loads the current state. */
  start(): Promise<void>;
  close(): Promise<void>;
  /** Whether writes can be served now. */
  available(): boolean;

  // --- servers ---
  /**
   * Registers a server, replacing any earlier registration of the same id (a restarted server):
   * the earlier registration's placements are released and returned as lost.
   */
  registerServer(pool: string, registration: ServerRegistration, now: number): Promise<{ server: Server; lost: LostPlacement[] }>;
  /** Removes a server and releases its placements. `server` is undefined if it was not registered. */
  deregisterServer(pool: string, id: string): Promise<{ server?: Server; lost: LostPlacement[] }>;
  /** Records a heartbeat and the load it reports; undefined if the server is not registered. */
  heartbeat(pool: string, id: string, load: ReportedLoad | undefined, now: number): Promise<Server | undefined>;
  /**
   * Sets the operator-intent state. With `expected`, only if the server is in that state now
   * (undefined otherwise): a writer deciding from a view that may be behind (the agent check)
   * never overwrites a change it has not seen.
   */
  setAdminState(pool: string, id: string, state: AdminState, expected?: AdminState): Promise<Server | undefined>;
  /**
   * Changes a server's weight and/or capacity (e.g. from its agent: `NN%`, `maxconn:N`).
   * Capacity below what is reserved only stops new placements; nothing placed is moved.
   */
  patchServer(pool: string, id: string, patch: ServerPatch): Promise<Server | undefined>;
  /**
   * Writes a probe's verdict. Ignored (undefined) if the server has re-registered since the probe
   * started (`epoch` differs) or is gone.
   */
  recordHealth(pool: string, id: string, epoch: string, health: HealthState): Promise<Server | undefined>;
  /** Releases every placement of one registration of a server (e.g. unhealthy past the grace period). */
  releaseServerPlacements(pool: string, id: string, epoch: string, reason: LostPlacement['reason']): Promise<LostPlacement[]>;

  getServer(pool: string, id: string): Server | undefined;
  listServers(pool: string): Server[];

  // --- placements ---
  /**
   * Finds the placement's server and reserves its units in one atomic step, or returns the
   * existing placement of that id. No server is ever booked past its capacity. An existing
   * placement still pending past its deadline is reclaimed (its units freed) in the same step and
   * the placement is made anew.
   */
  reserve(pool: string, request: ReserveRequest): Promise<ReserveResult>;
  /**
   * Marks a pending placement ready with the server's answer; undefined if it is gone, moved, or
   * (with `attempt`) was reclaimed and reserved again since.
   */
  confirm(pool: string, placementId: string, serverId: string, data: Record<string, unknown>, attempt?: string, pending?: Placement): Promise<Placement | undefined>;
  /**
   * Releases a placement and frees its units; with `serverId`, only if it is on that server; with
   * `attempt`, only if it is still that reservation (else `not-found`).
   */
  release(pool: string, placementId: string, serverId?: string, attempt?: string): Promise<ReleaseResult>;
  /**
   * Releases every placement still pending past its deadline (its owner died or was cut off) and
   * returns them. Safe to run on every instance at once: each is released once.
   */
  releaseExpired(pool: string, now: number): Promise<Placement[]>;

  getPlacement(pool: string, id: string): Placement | undefined;
  listPlacements(pool: string, serverId?: string): Placement[];
  /** `listPlacements(pool, serverId).length` without making the list (O(1)). */
  countPlacements(pool: string, serverId?: string): number;

  // --- coordination ---
  /**
   * Shares out work per server between instances (e.g. who probes which server): returns the ids
   * among `ids` that `holder` now holds for `ttlMs`. A holder keeps its leases while it renews them.
   */
  acquireLeases(pool: string, holder: string, ids: string[], ttlMs: number): Promise<string[]>;

  // --- session indexes ---
  /**
   * Sets (or renews) `key` → `value` in a pool's named index for `ttlMs` (e.g. the origins pool's
   * HLS session id → stream). Index entries are small and short-lived: in Redis they are plain keys
   * with a TTL, read from Redis itself (not the view, not published); in memory, a map with expiry.
   * `index` is `[a-z]+` (at most 32); `ttlMs` an integer ≥ 1; otherwise a RangeError.
   * Throws StoreUnavailableError while Redis is unreachable, like every write.
   */
  setIndex(pool: string, index: string, key: string, value: string, ttlMs: number): Promise<void>;
  /** The value under `key` in the index, undefined when absent or expired. Does not renew. */
  getIndex(pool: string, index: string, key: string): Promise<string | undefined>;
  /** Removes `key` from the index (nothing when absent). */
  deleteIndex(pool: string, index: string, key: string): Promise<void>;

  /** Every change, from this instance or another, in order. Returns an unsubscribe function. */
  subscribe(listener: (event: StoreEvent) => void): () => void;
}

export interface ServerPatch {
  weight?: number;
  capacity?: number;
  /** Merged into the server's attributes (keys given replace, others stay), e.g. the agent's `maxconn`. */
  attributes?: Record<string, number | string | boolean>;
}

export interface ReserveRequest {
  placementId: string;
  units: number;
  policy: PolicyName;
  region?: string;
  /** Servers not to use (they refused this placement already). */
  exclude?: string[];
  notifyUri?: string;
  attributes?: Placement['attributes'];
  now: number;
  /** The instance making the placement (recorded on it while pending). */
  owner?: string;
  /** How long the placement may stay pending before others may reclaim it; unset: no limit. */
  pendingTtlMs?: number;
}

export type ReserveResult =
  | { outcome: 'reserved'; placement: Placement; reclaimed?: Placement }
  | { outcome: 'existing'; placement: Placement }
  | { outcome: 'no-capacity' };

export type ReleaseResult =
  | { outcome: 'released'; placement: Placement }
  | { outcome: 'not-found' }
  | { outcome: 'wrong-server'; placement: Placement };

export type StoreEvent =
  | { type: 'server'; pool: string; server: Server }
  | { type: 'server-removed'; pool: string; id: string }
  | { type: 'placement'; pool: string; placement: Placement }
  | { type: 'placement-removed'; pool: string; placement: Placement }
  | { type: 'resync'; pool: string };

/** Index names: a-z, 1 to 32 letters. */
const INDEX_NAME = /^[a-z]{1,32}$/;
/** Longest index key or value (in UTF-16 units) a store accepts. */
export const MAX_INDEX_KEY = 1024;
export const MAX_INDEX_VALUE = 64 * 1024;

/**
 * Checks the arguments of setIndex/getIndex/deleteIndex (both stores alike): RangeError naming the
 * argument. `set` only for setIndex.
 */
export function checkIndexArgs(index: string, key: string, set?: { value: string; ttlMs: number }): void {
  if (typeof index !== 'string' || !INDEX_NAME.test(index)) throw new RangeError(`index: must be 1 to 32 letters a-z, got ${JSON.stringify(String(index).slice(0, 40))}`);
  if (typeof key !== 'string' || key.length === 0 || key.length > MAX_INDEX_KEY) throw new RangeError(`key: must be a string of 1 to ${MAX_INDEX_KEY} characters`);
  if (!set) return;
  if (typeof set.value !== 'string' || set.value.length > MAX_INDEX_VALUE) throw new RangeError(`value: must be a string of at most ${MAX_INDEX_VALUE} characters`);
  if (!(Number.isSafeInteger(set.ttlMs) && set.ttlMs >= 1)) throw new RangeError(`ttlMs: must be an integer >= 1, got ${String(set.ttlMs)}`);
}

/** The store cannot serve writes now (Redis unreachable); callers answer 503. */
export class StoreUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreUnavailableError';
  }
}
