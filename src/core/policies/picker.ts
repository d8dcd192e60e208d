/**
 * The per-request pickers of the HTTP/WebSocket proxy (src/proxy/): one pick per request or
 * upgrade, on live numbers kept by this process. Unlike `Policy` (pool snapshots, the store
 * re-checks), a picker's answer is final: the caller sends the request there, or queues it when
 * the answer is undefined (every backend full, excluded or at weight 0).
 */

/** A backend as the per-request pickers see it: live numbers of this process. */
export interface Candidate {
  readonly id: string;
  /** Effective weight (configured or agent weight, times slow start); 0 takes no new work. */
  weight: number;
  /** Requests in flight plus open WebSockets on this backend. */
  inflight: number;
  /** Per-backend concurrency limit (HAProxy maxconn); 0 = unlimited. */
  maxconn: number;
}

export interface PickContext {
  /** Hash key (consistent hashing) — a header, cookie or query value; undefined = no key. */
  key?: string | undefined;
  random: () => number;
  /** Backends not to choose (e.g. the one whose connect just failed, for a retry). */
  exclude?: ReadonlySet<string> | undefined;
}

/**
 * Stateful (round-robin index, SWRR weights, hash ring) but pure: no I/O, no clock. The caller
 * passes the SAME array object until the set or a weight changes, so pickers may memoize per
 * array identity (e.g. the hash ring).
 */
export interface Picker<T extends Candidate = Candidate> {
  pick(candidates: readonly T[], ctx: PickContext): T | undefined;
}

/** May take new work: a positive weight and under its maxconn. */
export function hasRoom(c: Candidate): boolean {
  return c.weight > 0 && (c.maxconn === 0 || c.inflight < c.maxconn);
}

/** hasRoom and not excluded: the check every picker runs per candidate. */
export function available(c: Candidate, exclude: ReadonlySet<string> | undefined): boolean {
  return hasRoom(c) && !exclude?.has(c.id);
}

/** a's load (inflight / weight) is below b's; cross-multiplied so no division (weights > 0). */
export function lessLoaded(a: Candidate, b: Candidate): boolean {
  return a.inflight * b.weight < b.inflight * a.weight;
}
