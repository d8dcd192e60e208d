/**
 * What the dashboard's routes answer (`GET /pools`, `/activity`, `/stats/history`, the `activity`
 * and `stats` events), as plain types with no imports: the server (src/dashboard/,
 * src/cli/status.ts) and the page (web/dashboard/, type-only imports) share this one file.
 */

/** One pool at a glance (`GET /pools`; the TypeBox schema is `PoolSummary` in api/routes/pools.ts). */
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

/** One line of the dashboard's event log. */
export interface ActivityEntry {
  at: string;
  pool: string;
  serverId?: string;
  placementId?: string;
  kind: 'registered' | 'removed' | 'health' | 'admin' | 'placed' | 'released';
  level: 'info' | 'warn' | 'error';
  message: string;
}

/** One point of the dashboard's charts: rates and latencies over the interval before `at`. */
export interface StatsSample {
  at: string;
  /** Placements created per second, by pool. */
  placementsPerSecond: Record<string, number>;
  /** Failed placement attempts per second, by reason. */
  failuresPerSecond: Record<string, number>;
  /** Health probe latency over the interval, every pool (null: no probe ran). */
  probeLatencyMs: { p50: number | null; p99: number | null };
  /** The HTTP proxy, when it runs in this instance (its workers included). */
  proxy: { requestsPerSecond: number; p99Ms: number | null } | null;
}
