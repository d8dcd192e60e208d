/**
 * Contracts between the agent's parts (collectors, the agent-check responder, self-registration).
 * Plain types: each part lives in its own file under src/agent/.
 */

/** One metric reading of the media server, by the seed's threshold names and more. */
export interface LoadSnapshot {
  /** CPU in percent as the seed defines it (load average as a percentage of the cores), or utilisation. */
  cpu?: number;
  /** Incoming streams (WebRTC, RTMP, RTSP publishers). */
  publishers?: number;
  /** Players / viewers. */
  subscribers?: number;
  /** HLS streams. */
  hls?: number;
  /** Network in / out, Mbps. */
  'band-in'?: number;
  'band-out'?: number;
  /** Anything else a collector reports (e.g. `consumers`, `allocations`, `rooms`). */
  [metric: string]: number | undefined;
}

/** What the agent knows now: the merged readings, and which sources are failing. */
export interface AgentState {
  load: LoadSnapshot;
  /** Sources that failed N times in a row (→ `down`). Empty when all are fine. */
  failing: string[];
  /** Operator intent: `drain` while draining (SIGTERM, or asked), `maint` on request. */
  admin: 'ready' | 'drain' | 'maint';
}

/** Something that can be read for the current agent state (the collectors' aggregate). */
export interface LoadSource {
  state(): AgentState;
}
