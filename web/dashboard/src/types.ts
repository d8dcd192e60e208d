/** What the page reads from Switchboard: the shapes of `GET /events`, `/activity` and `/stats/history`. */

export interface Health {
  status: string;
  since: string;
  lastCheck: string | null;
  successes: number;
  failures: number;
  lastError?: string;
  latencyMs?: number;
}

/** `serverView` in src/api/schemas.ts. */
export interface ServerView {
  serverId: string;
  kind: string;
  serviceUrl: string;
  endpoints?: Record<string, string>;
  capacity: number;
  reserved: number;
  used: number;
  free: number;
  reported: Record<string, number>;
  weight: number;
  region?: string;
  labels: Record<string, string>;
  adminState: 'active' | 'drain' | 'maint' | string;
  healthy: boolean;
  health: Health;
  attributes?: Record<string, string | number | boolean>;
  placements: number;
  registeredAt: string;
  lastHeartbeat: string;
}

export interface PlacementView {
  id: string;
  serverId: string;
  state: string;
}

export interface PoolSummary {
  pool: string;
  servers: number;
  healthy: number;
  placeable: number;
  capacity: number;
  used: number;
  free: number;
  placements: number;
}

export interface SnapshotPool {
  pool: string;
  summary: PoolSummary;
  servers: ServerView[];
  placements?: PlacementView[];
  placementsTruncated?: boolean;
}

export interface Snapshot {
  at: string;
  pools: SnapshotPool[];
}

export type Level = 'info' | 'warn' | 'error';

export interface Activity {
  at: string;
  pool: string;
  serverId?: string;
  placementId?: string;
  kind: string;
  level: Level;
  message: string;
}

export interface StatsSample {
  at: string;
  placementsPerSecond: Record<string, number>;
  failuresPerSecond: Record<string, number>;
  probeLatencyMs: { p50: number | null; p99: number | null };
  proxy: { requestsPerSecond: number; p99Ms: number | null } | null;
}

export interface StatsHistory {
  intervalSeconds: number;
  samples: StatsSample[];
}

export type Connection = 'connecting' | 'live' | 'reconnecting' | 'offline';
