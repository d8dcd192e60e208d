import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createRateLimiter, RedisRateLimiter, rateLimitKey, type RateDecision } from '../../src/proxy/rate-limit/index.js';
import { RedisServer } from '../helpers/redis.js';

/** Token buckets shared in a real redis-server by two limiters; and what happens when it goes away. */

let redis: RedisServer;
let admin: Redis;
const open: RedisRateLimiter[] = [];
const unhandled: unknown[] = [];
const onUnhandled = (err: unknown) => unhandled.push(err);

function limiter(...args: ConstructorParameters<typeof RedisRateLimiter>): RedisRateLimiter {
  const rl = new RedisRateLimiter(...args);
  open.push(rl);
  return rl;
}

async function until(what: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!what()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeAll(async () => {
  process.on('unhandledRejection', onUnhandled);
  redis = await RedisServer.start();
  admin = new Redis(redis.url, { lazyConnect: true });
  await admin.connect();
});

afterEach(async () => {
  await Promise.all(open.splice(0).map((rl) => rl.close()));
});

afterAll(async () => {
  admin?.disconnect();
  await redis?.dispose();
  process.off('unhandledRejection', onUnhandled);
  expect(unhandled).toEqual([]);
});

describe('RedisRateLimiter', () => {
  it('two instances share one bucket: burst 10 → exactly 10 allowed among concurrent calls', async () => {
    const a = limiter(redis.url);
    const b = limiter(redis.url);
    expect(await Promise.all([a.ready(), b.ready()])).toEqual([true, true]);
    // A refill so slow that nothing comes back during the test: "the same instant".
    const spec = { rate: 0.001, burst: 10 };
    const again: Promise<RateDecision>[] = [];
    for (let i = 0; i < 40; i++) again.push((i % 2 ? a : b).take('shared-client', spec));
    const decisions = await Promise.all(again);
    expect(decisions.filter((d) => d.allowed)).toHaveLength(10);
    for (const d of decisions.filter((d) => !d.allowed)) expect(d.retryAfterMs).toBeGreaterThan(0);
    // Another key has its own bucket.
    expect((await a.take('other-client', spec)).allowed).toBe(true);
  });

  it('refuses with retryAfterMs > 0 and allows again after it', async () => {
    const client = new Redis(redis.url);
    const rl = limiter(client, { prefix: 't2:' });
    await rl.ready();
    const spec = { rate: 10, burst: 2 };
    expect((await rl.take('k', spec)).allowed).toBe(true);
    expect((await rl.take('k', spec)).allowed).toBe(true);
    const refused = await rl.take('k', spec);
    expect(refused.allowed).toBe(false);
    expect(refused.retryAfterMs).toBeGreaterThan(0);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(100);
    await new Promise((r) => setTimeout(r, refused.retryAfterMs + 5));
    expect((await rl.take('k', spec)).allowed).toBe(true);
    await rl.close();
    expect(client.status).toBe('ready'); // the caller's client stays open
    client.disconnect();
  });

  it('expires the key when the bucket would be full again (+1 s); hashes unsafe keys', async () => {
    const rl = limiter(redis.url, { prefix: 't3:' });
    await rl.ready();
    const spec = { rate: 1, burst: 5 };
    expect((await rl.take('10.0.0.1', spec, 3)).allowed).toBe(true);
    const key = rateLimitKey('t3:', '10.0.0.1');
    expect(key).toBe('t3:rl:10.0.0.1');
    const pttl = await admin.pttl(key);
    // 3 tokens missing at 1/s → full in 3 s, + 1 s.
    expect(pttl).toBeGreaterThan(3500);
    expect(pttl).toBeLessThanOrEqual(4000);
    expect(await admin.hgetall(key)).toMatchObject({ tokens: '2' });

    const odd = 'a {tag} with spaces\r\n and ünïcode';
    expect((await rl.take(odd, spec)).allowed).toBe(true);
    const hashed = rateLimitKey('t3:', odd);
    expect(hashed).toMatch(/^t3:rl:#[A-Za-z0-9_-]{43}$/);
    expect(await admin.exists(hashed)).toBe(1);
  });

  it('refuses a cost above burst without writing', async () => {
    const rl = limiter(redis.url, { prefix: 't4:' });
    await rl.ready();
    const d = await rl.take('k', { rate: 2, burst: 3 }, 4);
    expect(d).toEqual({ allowed: false, retryAfterMs: 1500 });
    expect(await admin.exists(rateLimitKey('t4:', 'k'))).toBe(0);
  });

  it('survives SCRIPT FLUSH (EVALSHA falls back to EVAL)', async () => {
    const rl = limiter(redis.url, { prefix: 't5:' });
    await rl.ready();
    expect((await rl.take('k', { rate: 1, burst: 1 })).allowed).toBe(true);
    await admin.script('FLUSH');
    expect((await rl.take('k', { rate: 1, burst: 1 })).allowed).toBe(false);
  });

  it('createRateLimiter with redis is a RedisRateLimiter whose take returns a Promise', async () => {
    const rl = createRateLimiter({ redis: redis.url, prefix: 't6:' });
    await (rl as RedisRateLimiter).ready();
    const d = rl.take('k', { rate: 1, burst: 1 });
    expect(d).toBeInstanceOf(Promise);
    expect((await d).allowed).toBe(true);
    await rl.close();
  });
});

describe('RedisRateLimiter with Redis stopped', () => {
  it("fails open by default (per-process buckets), 'deny' refuses; logs once per outage; no unhandled rejection", async () => {
    const warnings: string[] = [];
    const infos: string[] = [];
    const logger = { warn: (_: object, msg: string) => warnings.push(msg), info: (_: object, msg: string) => infos.push(msg) };
    const allow = limiter(redis.url, { prefix: 'o1:', logger });
    const denyClient = new Redis(redis.url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy: () => 100 });
    denyClient.on('error', () => {});
    const deny = limiter(denyClient, { prefix: 'o2:', onError: 'deny', denyRetryAfterMs: 2000, logger });
    expect(await Promise.all([allow.ready(), deny.ready()])).toEqual([true, true]);
    const spec = { rate: 0.001, burst: 3 };
    expect((await allow.take('k', spec)).allowed).toBe(true);
    expect((await deny.take('k', spec)).allowed).toBe(true);
    expect(warnings).toEqual([]);

    await redis.stop();
    await until(() => denyClient.status !== 'ready');

    // Fail open, but limited by this process's buckets (burst 3, fresh: the shared state is out of reach).
    const during: RateDecision[] = [];
    for (let i = 0; i < 5; i++) during.push(await allow.take('k', spec));
    expect(during.map((d) => d.allowed)).toEqual([true, true, true, false, false]);
    expect(warnings).toHaveLength(1);

    expect(await deny.take('k', spec)).toEqual({ allowed: false, retryAfterMs: 2000 });
    expect(await deny.take('k', spec)).toEqual({ allowed: false, retryAfterMs: 2000 });
    expect(warnings).toHaveLength(2); // one per limiter

    await redis.restart(); // back, empty
    await until(() => denyClient.status === 'ready', 10_000);
    const back = async (rl: RedisRateLimiter) => {
      for (let i = 0; i < 100; i++) {
        if ((await rl.take(`probe-${i}`, spec)).allowed && infos.length > 0) return;
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await back(deny);
    expect((await deny.take('k', spec)).allowed).toBe(true);
    expect(infos.length).toBeGreaterThanOrEqual(1);
    expect(warnings).toHaveLength(2);
    await deny.close();
    denyClient.disconnect();
  });

  it('a Redis that does not answer in timeoutMs gets onError (CLIENT PAUSE)', async () => {
    const warnings: string[] = [];
    const rl = limiter(redis.url, { prefix: 'o3:', timeoutMs: 50, logger: { warn: (_: object, msg: string) => warnings.push(msg) } });
    await rl.ready();
    await admin.client('PAUSE', 400, 'ALL');
    const started = Date.now();
    const d = await rl.take('k', { rate: 1, burst: 1 });
    expect(Date.now() - started).toBeLessThan(300);
    expect(d.allowed).toBe(true); // local fallback
    expect(warnings).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 450)); // the late reply arrives and is ignored
    expect((await rl.take('k', { rate: 1, burst: 1 })).allowed).toBe(false); // Redis took the first
  });

  it('a bad spec throws synchronously, not as a rejection', () => {
    const rl = limiter(redis.url);
    expect(() => rl.take('k', { rate: 0, burst: 1 })).toThrow(RangeError);
  });
});
