import type { HealthState } from './model.js';

/** HAProxy's `rise` / `fall`, the coturn balancer's `successThreshold` / `failureThreshold`. */
export interface HealthThresholds {
  /** Consecutive successes that bring an unhealthy (or unknown) server up. */
  successThreshold: number;
  /** Consecutive failures that take a healthy (or unknown) server down. */
  failureThreshold: number;
}

export interface ProbeOutcome {
  ok: boolean;
  at: number;
  latencyMs?: number;
  error?: string;
  /**
   * The failure is the server's agent saying `down` while the probe itself passed: it counts
   * towards health, but the probe is not failing (see HealthState.probeFailingSince).
   */
  byAgent?: boolean;
}

export function initialHealth(status: 'healthy' | 'unknown', now: number): HealthState {
  return { status, successes: 0, failures: 0, since: now, lastCheck: 0 };
}

/**
 * The health state machine. Pure: the next state from the current one and one probe outcome.
 *
 * - healthy → unhealthy after `failureThreshold` consecutive failures;
 * - unhealthy → healthy after `successThreshold` consecutive successes;
 * - unknown (never probed) is decided by the first probe, so a fresh server is not kept out of
 *   rotation, or in it, for several intervals.
 */
export function nextHealth(state: HealthState, outcome: ProbeOutcome, t: HealthThresholds): HealthState {
  const rise = Math.max(1, t.successThreshold);
  const fall = Math.max(1, t.failureThreshold);
  const successes = outcome.ok ? Math.min(state.successes + 1, rise) : 0;
  const failures = outcome.ok ? 0 : Math.min(state.failures + 1, fall);
  let status = state.status;
  if (status === 'unknown') status = outcome.ok ? 'healthy' : 'unhealthy';
  else if (status === 'healthy' && failures >= fall) status = 'unhealthy';
  else if (status === 'unhealthy' && successes >= rise) status = 'healthy';
  const next: HealthState = {
    status,
    successes,
    failures,
    since: status === state.status ? state.since : outcome.at,
    lastCheck: outcome.at,
  };
  if (outcome.latencyMs !== undefined) next.lastLatencyMs = outcome.latencyMs;
  if (!outcome.ok && outcome.error) next.lastError = outcome.error;
  if (!outcome.ok && !outcome.byAgent) next.probeFailingSince = state.probeFailingSince ?? outcome.at;
  return next;
}

/**
 * Since when a server has been unreachable by its own probe and unhealthy, for releasing its
 * placements after a grace period; undefined while it is healthy or only its agent says `down`
 * (an overloaded server keeps its rooms, as HAProxy keeps a server's sessions).
 */
export function downSince(state: HealthState): number | undefined {
  if (state.status !== 'unhealthy' || state.probeFailingSince === undefined) return undefined;
  return Math.max(state.since, state.probeFailingSince);
}

/**
 * Whether a probe changed something worth persisting: the status or a counter. Latency and the
 * time of the check alone are not written back, so a steady healthy pool costs no store writes.
 */
export function healthChanged(a: HealthState, b: HealthState): boolean {
  return a.status !== b.status || a.successes !== b.successes || a.failures !== b.failures || a.probeFailingSince !== b.probeFailingSince;
}
