import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Cluster, Redis } from 'ioredis';
import { checkSpec, type BucketSpec } from '../../core/token-bucket.js';
import { createRedisClient, type RedisClient, type RedisConnectionConfig } from '../../store/redis/connection.js';
import type { RateDecision, RateLimiter, RateLimitLogger } from './index.js';
import { LocalRateLimiter, type LocalRateLimiterOptions } from './local.js';

/**
 * The script lives with the store's scripts because the build copies only src/store/redis/lua
 * (scripts/copy-assets.mjs); it is self-contained (common.lua is not prepended).
 */
const script = readFileSync(new URL('../../store/redis/lua/rate-limit.lua', import.meta.url), 'utf8');
/** ioredis `defineCommand` name: EVALSHA, and EVAL once on NOSCRIPT (a restarted or new node). */
const command = 'sb_rate_limit';

type WithScript = { [command]: (key: string, rate: number, burst: number, cost: number) => Promise<unknown> };

export interface RedisRateLimiterOptions {
  /** Prefix of every key (default `sb:`): a bucket is `<prefix>rl:<key>`. */
  prefix?: string;
  /**
   * When Redis cannot answer (down, failing over, slower than `timeoutMs`):
   * - `allow` (default): fail open — a rate limiter outage must not take the site down — but not
   *   unlimited: this process's own buckets (`LocalRateLimiter`) decide meanwhile, so limits still
   *   hold per process (×N with N processes) until Redis answers again.
   * - `deny`: refuse, with `retryAfterMs` = `denyRetryAfterMs`.
   */
  onError?: 'allow' | 'deny';
  /** `retryAfterMs` of a refusal under `onError: 'deny'` (default 1000). */
  denyRetryAfterMs?: number;
  /** A decision waits at most this long for Redis before `onError` applies (ms, default 250; 0: no limit). */
  timeoutMs?: number;
  /** Told once per outage (warn), and when Redis answers again (info, if it has one). */
  logger?: RateLimitLogger;
  /** The fallback buckets of `onError: 'allow'`. */
  local?: LocalRateLimiterOptions;
}

/** Keys made only of these (and not too long) are used as they are; any other is hashed. */
const plainKey = /^[A-Za-z0-9._:@/-]{0,100}$/;

/**
 * The Redis key of `key`'s bucket: `<prefix>rl:<key>` when the key is short and plain (readable
 * in redis-cli: addresses, ids), else `<prefix>rl:#<sha256, base64url>` — `#` is not a plain
 * character, so the two never collide. Any client string is safe: no braces reach the key (so a
 * client cannot choose the Cluster slot), and length is bounded. Each key is its own slot in a
 * Cluster, which is fine: a call touches one key.
 */
export function rateLimitKey(prefix: string, key: string): string {
  if (plainKey.test(key)) return `${prefix}rl:${key}`;
  return `${prefix}rl:#${createHash('sha256').update(key).digest('base64url')}`;
}

/**
 * Token buckets shared in Redis by every instance and process: one Lua script
 * (src/store/redis/lua/rate-limit.lua) refills and takes atomically on a hash per key, on Redis's
 * clock, and expires the key when the bucket would be full again. Works on standalone, Sentinel
 * and Cluster clients alike. `take` always returns a native Promise.
 */
export class RedisRateLimiter implements RateLimiter {
  private readonly client: RedisClient;
  private readonly owned: boolean;
  private readonly prefix: string;
  private readonly onError: 'allow' | 'deny';
  private readonly denied: RateDecision;
  private readonly timeoutMs: number;
  private readonly logger: RateLimitLogger | undefined;
  private readonly fallback: LocalRateLimiter | undefined;
  /** In an outage (logged once, cleared by the next answer). */
  private down = false;

  /**
   * `redis`: a client the caller owns (kept open by `close`), or a URL / connection config for a
   * connection this limiter opens (with the store's settings: no offline queue, so commands fail
   * at once while Redis is away) and closes.
   */
  constructor(redis: RedisClient | string | RedisConnectionConfig, options: RedisRateLimiterOptions = {}) {
    if (redis instanceof Redis || redis instanceof Cluster) {
      this.client = redis;
      this.owned = false;
    } else {
      this.client = createRedisClient(typeof redis === 'string' ? { mode: 'standalone', url: redis } : redis);
      this.owned = true;
      // Errors are answered per call (onError) and logged once per outage; ioredis keeps reconnecting.
      this.client.on('error', () => {});
      this.client.connect().catch(() => {});
    }
    this.client.defineCommand(command, { numberOfKeys: 1, lua: script });
    this.prefix = options.prefix ?? 'sb:';
    this.onError = options.onError ?? 'allow';
    this.denied = Object.freeze({ allowed: false, retryAfterMs: options.denyRetryAfterMs ?? 1000 });
    this.timeoutMs = options.timeoutMs ?? 250;
    this.logger = options.logger;
    if (this.onError === 'allow') this.fallback = new LocalRateLimiter(options.local);
  }

  /**
   * Resolves true once the connection is up, false after `timeoutMs`; never rejects. Until then
   * decisions are `onError`'s (commands fail at once while disconnected), so a server may await
   * this before it starts taking requests.
   */
  ready(timeoutMs = 5000): Promise<boolean> {
    if (this.client.status === 'ready') return Promise.resolve(true);
    return new Promise((resolve) => {
      const onReady = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.client.off('ready', onReady);
        resolve(false);
      }, timeoutMs);
      this.client.once('ready', onReady);
    });
  }

  /** Throws RangeError (synchronously) on a bad spec or cost; otherwise never rejects. */
  take(key: string, spec: BucketSpec, cost = 1): Promise<RateDecision> {
    checkSpec(spec, cost);
    return new Promise<RateDecision>((resolve) => {
      let settled = false;
      const timer =
        this.timeoutMs > 0
          ? setTimeout(() => {
              settled = true;
              resolve(this.failed(new Error(`rate limiter: Redis did not answer within ${this.timeoutMs} ms`), key, spec, cost));
            }, this.timeoutMs)
          : undefined;
      const done = (d: () => RateDecision) => {
        if (settled) return;
        settled = true;
        if (timer) clearTimeout(timer);
        resolve(d());
      };
      let call: Promise<unknown>;
      try {
        call = (this.client as unknown as WithScript)[command](rateLimitKey(this.prefix, key), spec.rate, spec.burst, cost);
      } catch (err) {
        done(() => this.failed(err, key, spec, cost));
        return;
      }
      call.then(
        (reply) => done(() => this.answered(reply, key, spec, cost)),
        (err: unknown) => done(() => this.failed(err, key, spec, cost)),
      );
    });
  }

  private answered(reply: unknown, key: string, spec: BucketSpec, cost: number): RateDecision {
    if (!Array.isArray(reply) || typeof reply[0] !== 'number' || typeof reply[1] !== 'number') {
      return this.failed(new Error(`rate limiter: unexpected reply from Redis: ${JSON.stringify(reply)}`), key, spec, cost);
    }
    if (this.down) {
      this.down = false;
      this.logger?.info?.({}, 'rate limiter: Redis answers again; limits are shared again');
    }
    return { allowed: reply[0] === 1, retryAfterMs: reply[1] };
  }

  private failed(err: unknown, key: string, spec: BucketSpec, cost: number): RateDecision {
    if (!this.down) {
      this.down = true;
      this.logger?.warn(
        { err, onError: this.onError },
        this.onError === 'allow'
          ? 'rate limiter: Redis unavailable; limiting per process until it answers again'
          : 'rate limiter: Redis unavailable; refusing rate-limited requests until it answers again',
      );
    }
    return this.fallback ? this.fallback.take(key, spec, cost) : this.denied;
  }

  async close(): Promise<void> {
    await this.fallback?.close();
    if (!this.owned) return;
    if (this.client.status !== 'ready') return this.client.disconnect();
    try {
      await this.client.quit();
    } catch {
      this.client.disconnect();
    }
  }
}
