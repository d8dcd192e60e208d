/**
 * The Switchboard model (PRODUCT.md, "One model under all of it"). Plain data, no behaviour, no I/O:
 * every store, pool, policy and transport speaks these types.
 */

import type { PlacementWhy } from './explain.js';

/** What a server is for; each kind is balanced by its own pool. */
export type ServerKind = 'sfu' | 'turn' | 'origin' | 'http';

/** Operator intent, independent of health (HAProxy's `ready` / `drain` / `maint`). */
export type AdminState = 'active' | 'drain' | 'maint';

export type HealthStatus = 'unknown' | 'healthy' | 'unhealthy';

export interface HealthState {
  status: HealthStatus;
  /** Consecutive successful probes (capped at the rise threshold). */
  successes: number;
  /** Consecutive failed probes (capped at the fall threshold). */
  failures: number;
  /** When `status` last changed (ms since epoch). */
  since: number;
  /** When the last probe finished, 0 if never probed. */
  lastCheck: number;
  /** Why the last probe failed, if it did. */
  lastError?: string;
  /** Latency of the last probe in ms. */
  lastLatencyMs?: number;
  /** When the probe itself (not the server's agent) started failing, while it keeps failing. */
  probeFailingSince?: number;
}

/** Load a server reports about itself (heartbeat or agent); units are pool-specific. */
export interface ReportedLoad {
  /** Load in capacity units (consumers on an SFU, allocations on TURN, ...). */
  units?: number;
  [metric: string]: number | undefined;
}

export interface Server {
  id: string;
  kind: ServerKind;
  /** Base URL of the server's control API (http or https). */
  serviceUrl: string;
  /** Public endpoints per protocol, as clients should reach them. */
  endpoints: Record<string, string>;
  /** Total capacity in units. */
  capacity: number;
  /** Units held by placements on this server. */
  reserved: number;
  /** Last load the server reported, if any. */
  reported?: ReportedLoad;
  weight: number;
  region?: string;
  labels: Record<string, string>;
  adminState: AdminState;
  health: HealthState;
  /** Path probed by the HTTP health check, overriding the pool default. */
  healthPath?: string;
  /** Free-form registration attributes kept for display (e.g. workers). */
  attributes: Record<string, number | string | boolean>;
  registeredAt: number;
  lastHeartbeat: number;
  /**
   * Identity of this registration. A re-registration (a restarted server) gets a new epoch; work
   * that was computed for an older epoch (a probe, a placement) must not touch the new one.
   */
  epoch: string;
  /** Monotonic revision, bumped on every change, so caches can drop stale updates. */
  rev: number;
}

/** What a server asks for when it registers; the store fills in the rest. */
export interface ServerRegistration {
  id: string;
  kind: ServerKind;
  serviceUrl: string;
  endpoints?: Record<string, string>;
  capacity: number;
  weight?: number;
  region?: string;
  labels?: Record<string, string>;
  healthPath?: string;
  attributes?: Record<string, number | string | boolean>;
  /** Health a new registration starts with (seed 000: registered servers start healthy). */
  initialHealth: 'healthy' | 'unknown';
}

export type PlacementState = 'pending' | 'ready';

/** A room, stream, TURN allocation or sticky key bound to one server. */
export interface Placement {
  id: string;
  serverId: string;
  /** The server registration (epoch) the placement was made on. */
  serverEpoch: string;
  units: number;
  /** `pending` while the media server is being asked to create it, `ready` once it answered. */
  state: PlacementState;
  createdAt: number;
  /** The Switchboard instance that reserved it and is creating it (while pending). */
  owner?: string;
  /**
   * Identity of this reservation: a placement reclaimed and reserved again gets a new one, so a
   * late confirm or release from the first reservation's owner cannot touch the second.
   */
  attempt?: string;
  /**
   * While pending: when the owner must have confirmed it (ms since epoch). Past it, the owner is
   * presumed dead (killed during creation, cut off from the store) and any instance may reclaim
   * the placement and its units.
   */
  deadline?: number;
  /** Where the placement's owner wants to hear about it (seed 000's eventNotificationUri). */
  notifyUri?: string;
  /** The media server's answer, replayed to anyone asking for the same placement. */
  data?: Record<string, unknown>;
  /** Request attributes kept for display and re-placement (region, maxPeerCount, ...). */
  attributes: Record<string, number | string | boolean>;
  /**
   * Why this server was chosen (core/explain.ts), as the store saw the pool then. Absent on
   * placements written by versions before it.
   */
  why?: PlacementWhy;
}

/** Why placements were released without their owner asking. */
export type LossReason = 'server-deregistered' | 'server-restarted' | 'server-unhealthy';

export interface LostPlacement {
  placement: Placement;
  reason: LossReason;
}
