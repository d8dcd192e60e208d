/**
 * The token bucket, pure: no clock, no I/O. A bucket holds up to `burst` tokens and gains `rate`
 * tokens per second; a request takes `cost` tokens (1 by default) or is refused.
 *
 * The same arithmetic runs inside Redis (src/store/redis/lua/rate-limit.lua): keep the two in step.
 *
 * - No state means a full bucket (a bucket that has refilled completely is the same as none, so
 *   stores may drop it — see `msUntilFull`).
 * - Time is in milliseconds, on whatever clock the caller uses (monotonic is best). A clock that
 *   goes backwards refills nothing and never moves `at` back.
 * - `retryAfterMs` is 0 when allowed; when refused it is the whole number of milliseconds after
 *   which `cost` tokens are there (rounded up, so retrying then succeeds if nothing else took them).
 * - A `cost` above `burst` can never be allowed. It is refused without taking anything, with
 *   `retryAfterMs` = the time a full refill from empty takes (`ceil(burst / rate · 1000)`): a finite,
 *   positive answer that fits a `Retry-After` header (Infinity would not), though retrying then is
 *   refused again. Callers that care can check `cost > spec.burst` themselves.
 */

export interface BucketSpec {
  /** Tokens per second (> 0). */
  rate: number;
  /** Capacity (> 0): the most requests allowed at once after a quiet period. */
  burst: number;
}

export interface BucketState {
  tokens: number;
  /** When `tokens` was true (ms, the caller's clock). */
  at: number;
}

export interface TakeResult {
  allowed: boolean;
  /** The bucket after this request (refilled to `now`, less `cost` if allowed). */
  state: BucketState;
  /** 0 when allowed; otherwise the ms until `cost` tokens are there (see above for cost > burst). */
  retryAfterMs: number;
}

/**
 * Slack for floating-point error: refilling for exactly `retryAfterMs` can land a hair below
 * `cost` (e.g. 0.30000000000000004 vs 0.3); it counts as enough. rate-limit.lua uses the same.
 */
export const EPSILON = 1e-9;

/** Throws a RangeError for a spec or cost no bucket can work with (a configuration bug). */
export function checkSpec(spec: BucketSpec, cost = 1): void {
  if (!(spec.rate > 0 && Number.isFinite(spec.rate))) throw new RangeError(`token bucket: rate must be a finite number > 0, got ${spec.rate}`);
  if (!(spec.burst > 0 && Number.isFinite(spec.burst))) throw new RangeError(`token bucket: burst must be a finite number > 0, got ${spec.burst}`);
  if (!(cost >= 0 && Number.isFinite(cost))) throw new RangeError(`token bucket: cost must be a finite number >= 0, got ${cost}`);
}

/** The bucket refilled to `now` (full if there is no state). */
export function refill(state: BucketState | undefined, spec: BucketSpec, now: number): BucketState {
  if (state === undefined) return { tokens: spec.burst, at: now };
  const elapsed = now > state.at ? now - state.at : 0;
  return { tokens: Math.min(spec.burst, state.tokens + (elapsed * spec.rate) / 1000), at: now > state.at ? now : state.at };
}

/** Takes `cost` tokens if the bucket (refilled to `now`) holds them. Throws RangeError on a bad spec/cost. */
export function take(state: BucketState | undefined, spec: BucketSpec, now: number, cost = 1): TakeResult {
  checkSpec(spec, cost);
  const s = refill(state, spec, now);
  if (cost > spec.burst) return { allowed: false, state: s, retryAfterMs: Math.ceil((spec.burst * 1000) / spec.rate) };
  if (s.tokens + EPSILON >= cost) return { allowed: true, state: { tokens: Math.max(0, s.tokens - cost), at: s.at }, retryAfterMs: 0 };
  return { allowed: false, state: s, retryAfterMs: Math.ceil(((cost - s.tokens) * 1000) / spec.rate) };
}

/** Ms from `state.at` until the bucket is full again (0 if it is): after that it equals no state. */
export function msUntilFull(state: BucketState, spec: BucketSpec): number {
  return state.tokens >= spec.burst ? 0 : Math.ceil(((spec.burst - state.tokens) * 1000) / spec.rate);
}
