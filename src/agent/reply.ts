import type { AgentState, LoadSnapshot } from './types.js';

/**
 * The agent-check reply, pure: from what the agent knows now to the one line HAProxy reads.
 *
 * HAProxy 2.6's grammar (configuration.txt, "agent-check"): one ASCII line, words separated by
 * spaces, tabs or commas, in any order: `NN%` (weight relative to the configured one), `maxconn:N`,
 * `ready` / `drain` / `maint` (administrative state), `up` / `down` / `fail` / `stopped` (operating
 * state; the down words may be followed by `#description`). Words not sent leave HAProxy's value
 * unchanged, and "only the agent may revert its own actions": an agent that said `drain` must say
 * `ready` to undo it, so replies carry `ready` for a while after the agent leaves drain or maint
 * (and after it starts, in case the previous run drained). `ready` is not sent all the time, since
 * it would also cancel a drain set by an operator on HAProxy's CLI (the same flag).
 */

/** Threshold names as the seed's script takes them; other metric names are allowed too. */
export const SEED_THRESHOLDS = ['cpu', 'publishers', 'subscribers', 'hls', 'band-in', 'band-out'] as const;

/** The seed's defaults: cpu 90 %, 100 publishers / subscribers / HLS streams, 100 Mbps in and out. */
export const DEFAULT_THRESHOLDS: Record<string, number> = {
  cpu: 90,
  publishers: 100,
  subscribers: 100,
  hls: 100,
  'band-in': 100,
  'band-out': 100,
};

/**
 * How an `up` reply states the weight: `headroom` (the smallest headroom left across thresholds,
 * as a percentage, 1..100: `up 37%`), `full` (`up 100%`, what the seed's script answers) or
 * `none` (plain `up`, leaving the weight alone).
 */
export type WeightMode = 'headroom' | 'full' | 'none';

export interface ReplyOptions {
  thresholds: Record<string, number>;
  weight: WeightMode;
  /** Appended as `maxconn:N` when set. */
  maxconn?: number;
  /** Add `ready` (see above). */
  announceReady?: boolean;
}

export interface Reply {
  state: 'up' | 'down' | 'drain' | 'maint';
  /** Weight percentage (1..100) when the reply states one. */
  weight?: number;
  maxconn?: number;
  ready?: boolean;
  /** Why the server is down (after `#`). */
  reason?: string;
}

/** Thresholds reached (value >= limit, "if any of thresholds is reached ... down"), as `name value>=limit`. */
export function crossed(load: LoadSnapshot, thresholds: Record<string, number>): string[] {
  const out: string[] = [];
  for (const [name, limit] of Object.entries(thresholds)) {
    const value = load[name];
    if (value === undefined || !Number.isFinite(value)) continue;
    if (value >= limit) out.push(`${name} ${round(value)}>=${limit}`);
  }
  return out;
}

/**
 * Headroom left as a percentage: for each threshold with a reading, (limit − value) / limit; the
 * smallest, ×100, rounded and clamped to 1..100. 100 when no threshold has a reading.
 */
export function headroomPercent(load: LoadSnapshot, thresholds: Record<string, number>): number {
  let min = 1;
  for (const [name, limit] of Object.entries(thresholds)) {
    const value = load[name];
    if (value === undefined || !Number.isFinite(value) || !(limit > 0)) continue;
    min = Math.min(min, (limit - value) / limit);
  }
  return Math.min(100, Math.max(1, Math.round(min * 100)));
}

/** Decides the reply: maint, then drain, then down (failing sources or thresholds reached), else up. */
export function decideReply(state: AgentState, opts: ReplyOptions): Reply {
  if (state.admin === 'maint') return { state: 'maint' };
  if (state.admin === 'drain') return { state: 'drain' };
  const extra = { ...(opts.maxconn !== undefined ? { maxconn: opts.maxconn } : {}), ...(opts.announceReady ? { ready: true } : {}) };
  const reasons = [...state.failing.map((s) => `${s} failing`), ...crossed(state.load, opts.thresholds)];
  if (reasons.length > 0) return { state: 'down', reason: reasons.join(', '), ...extra };
  const weight = opts.weight === 'headroom' ? headroomPercent(state.load, opts.thresholds) : opts.weight === 'full' ? 100 : undefined;
  return { state: 'up', ...(weight !== undefined ? { weight } : {}), ...extra };
}

/** The line sent, newline-terminated (HAProxy needs the terminator). */
export function formatReply(reply: Reply): string {
  const words: string[] = [reply.state];
  if (reply.ready) words.push('ready');
  if (reply.weight !== undefined) words.push(`${reply.weight}%`);
  if (reply.maxconn !== undefined) words.push(`maxconn:${reply.maxconn}`);
  // The description runs to the end of the line: keep it one line of plain ASCII.
  if (reply.reason) words.push(`#${reply.reason.replace(/[^\x20-\x7e]/g, '?')}`);
  return `${words.join(' ')}\n`;
}

/** decideReply + formatReply. */
export function replyLine(state: AgentState, opts: ReplyOptions): string {
  return formatReply(decideReply(state, opts));
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
