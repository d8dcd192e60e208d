/**
 * Rate limiting for the HTTP reverse proxy: a token bucket per key (client address, API key,
 * route, ...), kept in this process (`LocalRateLimiter`) or shared by every instance in Redis
 * (`RedisRateLimiter`). The arithmetic is src/core/token-bucket.ts.
 *
 * Hot path: `LocalRateLimiter.take` answers synchronously (a plain object, never a Promise), so
 * the proxy pays no microtask for it; `RedisRateLimiter.take` returns a native Promise. Callers
 * tell them apart with `decision instanceof Promise` (or `isPending`).
 *
 * With N worker processes and no Redis, each worker has its own buckets: a key gets up to N times
 * its limit. Configure Redis for one limit across all workers and instances.
 */
import type { BucketSpec } from '../../core/token-bucket.js';
import type { RedisClient, RedisConnectionConfig } from '../../store/redis/connection.js';
import { LocalRateLimiter, type LocalRateLimiterOptions } from './local.js';
import { RedisRateLimiter, type RedisRateLimiterOptions } from './redis.js';

export type { BucketSpec } from '../../core/token-bucket.js';

export interface RateDecision {
  allowed: boolean;
  /** 0 when allowed; otherwise the ms after which the request would be allowed (for Retry-After). */
  retryAfterMs: number;
}

export interface RateLimiter {
  /**
   * Takes `cost` tokens (default 1) from `key`'s bucket. Synchronous for the local limiter.
   * Throws a RangeError (synchronously, for both) on a bad spec or cost: a configuration bug.
   */
  take(key: string, spec: BucketSpec, cost?: number): RateDecision | Promise<RateDecision>;
  /** Stops timers; a limiter that opened its own Redis connection closes it. */
  close(): Promise<void>;
}

/** Anything with a logger's `warn` (pino fits); `info` is used when present. */
export interface RateLimitLogger {
  warn(obj: object, msg: string): void;
  info?(obj: object, msg: string): void;
}

/** Whether a decision still has to be awaited. */
export function isPending(d: RateDecision | Promise<RateDecision>): d is Promise<RateDecision> {
  return d instanceof Promise;
}

export interface RateLimiterOptions extends RedisRateLimiterOptions {
  /** Shared buckets in Redis: a client (the caller owns it), a URL or a connection config. None: local. */
  redis?: RedisClient | string | RedisConnectionConfig;
}

/** A Redis limiter when `redis` is given, else a local one. */
export function createRateLimiter(options: RateLimiterOptions & LocalRateLimiterOptions = {}): RateLimiter {
  const { redis, ...rest } = options;
  if (redis === undefined) return new LocalRateLimiter(rest);
  return new RedisRateLimiter(redis, rest);
}

export { LocalRateLimiter, type LocalRateLimiterOptions } from './local.js';
export { RedisRateLimiter, rateLimitKey, type RedisRateLimiterOptions } from './redis.js';
