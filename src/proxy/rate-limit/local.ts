import { performance } from 'node:perf_hooks';
import { msUntilFull, take, type BucketSpec } from '../../core/token-bucket.js';
import type { RateDecision, RateLimiter } from './index.js';

export interface LocalRateLimiterOptions {
  /** Most buckets kept (default 100 000); past it the least recently used one is dropped. */
  maxKeys?: number;
  /** How often buckets that have refilled completely are dropped (ms, default 30 000; 0: never). */
  sweepIntervalMs?: number;
  /** The clock, in ms (default `performance.now`, monotonic). */
  now?: () => number;
}

interface Entry {
  tokens: number;
  at: number;
  /** When the bucket is full again: from then on it is the same as no bucket. */
  fullAt: number;
}

const ALLOWED: RateDecision = Object.freeze({ allowed: true, retryAfterMs: 0 });

/**
 * Token buckets in this process's memory, answering synchronously.
 *
 * Per process: with N worker processes each has its own buckets, so a key gets up to N × its
 * limit (use `RedisRateLimiter` for one limit across processes and instances).
 *
 * Memory is bounded: a Map in least-recently-used order (a take moves its key to the end) holds
 * at most `maxKeys` buckets; inserting one more drops the least recently used. Dropping a bucket
 * that is not full yet lets that key start over with a full one — the bound is meant to be far
 * above the number of keys active at once. Separately, an unref'd timer drops buckets that have
 * refilled completely (a full bucket is the same as none), so idle keys cost nothing.
 */
export class LocalRateLimiter implements RateLimiter {
  private readonly buckets = new Map<string, Entry>();
  private readonly maxKeys: number;
  private readonly now: () => number;
  private readonly sweeper: NodeJS.Timeout | undefined;

  constructor(options: LocalRateLimiterOptions = {}) {
    this.maxKeys = options.maxKeys ?? 100_000;
    if (!(this.maxKeys >= 1)) throw new RangeError(`LocalRateLimiter: maxKeys must be >= 1, got ${this.maxKeys}`);
    this.now = options.now ?? (() => performance.now());
    const every = options.sweepIntervalMs ?? 30_000;
    if (every > 0) {
      this.sweeper = setInterval(() => this.sweep(), every);
      this.sweeper.unref();
    }
  }

  /** Synchronous: never returns a Promise. Throws RangeError on a bad spec or cost. */
  take(key: string, spec: BucketSpec, cost = 1): RateDecision {
    const now = this.now();
    const old = this.buckets.get(key);
    const r = take(old, spec, now, cost);
    if (old !== undefined) this.buckets.delete(key);
    else if (r.state.tokens >= spec.burst) {
      // Nothing taken from a full bucket (cost 0, or cost > burst): no need to remember it.
      return r.allowed ? ALLOWED : { allowed: false, retryAfterMs: r.retryAfterMs };
    } else if (this.buckets.size >= this.maxKeys) {
      const lru = this.buckets.keys().next();
      if (!lru.done) this.buckets.delete(lru.value);
    }
    this.buckets.set(key, { tokens: r.state.tokens, at: r.state.at, fullAt: r.state.at + msUntilFull(r.state, spec) });
    return r.allowed ? ALLOWED : { allowed: false, retryAfterMs: r.retryAfterMs };
  }

  /** Drops every bucket that has refilled completely by now; returns how many. */
  sweep(): number {
    const now = this.now();
    let dropped = 0;
    for (const [key, e] of this.buckets) {
      if (e.fullAt <= now) {
        this.buckets.delete(key);
        dropped++;
      }
    }
    return dropped;
  }

  /** Buckets held now. */
  get size(): number {
    return this.buckets.size;
  }

  async close(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    this.buckets.clear();
  }
}
