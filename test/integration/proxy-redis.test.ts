import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, until } from '../helpers/http.js';
import { get, startBackend, startProxy, type Backend, type ProxyUnderTest } from '../helpers/proxy.js';
import { RedisServer } from '../helpers/redis.js';

/**
 * Two Switchboard instances, each with its proxy, sharing one Redis: what must be common is —
 * the backends (registered on one, served by both, health checked once) and, with
 * `rateLimit.store: redis`, the rate-limit buckets.
 */
describe('proxy on two instances sharing Redis', () => {
  let redis: RedisServer;
  let a: ProxyUnderTest;
  let b: ProxyUnderTest;
  const backends: Backend[] = [];

  beforeAll(async () => {
    redis = await RedisServer.start();
    backends.push(await startBackend('one'), await startBackend('two'));
    const env = { REDIS_URL: redis.url };
    const proxy = {
      backends: [{ host: '127.0.0.1', port: backends[0]!.port }],
      rateLimit: { store: 'redis' as const, perIp: { rate: 0.001, burst: 10 } },
    };
    a = await startProxy(proxy, { env });
    b = await startProxy(proxy, { env });
  }, 30_000);

  afterAll(async () => {
    await a?.close();
    await b?.close();
    for (const x of backends) await x.stop();
    await redis?.stop();
  });

  it('a backend registered through one instance is served by the other', async () => {
    const res = await call(a.api, 'POST', '/backends', { host: '127.0.0.1', port: backends[1]!.port });
    expect(res.status).toBe(200);
    await until(async () => b.sb.http!.list().some(({ server }) => server.id === `127.0.0.1:${backends[1]!.port}` && server.health.status === 'healthy'), 5_000, 'instance b sees the new backend healthy');
    const seen = new Set<unknown>();
    for (let i = 0; i < 4; i++) seen.add((await get(`${b.url}/x`)).json?.backend);
    expect([...seen].sort()).toEqual(['one', 'two']);
    expect((await call(b.api, 'GET', '/servers')).body.servers).toEqual(
      expect.arrayContaining([expect.objectContaining({ serverId: `127.0.0.1:${backends[1]!.port}`, kind: 'http' })]),
    );
  });

  it('rate limits are shared: the burst is spent once across both instances', async () => {
    // The four requests of the first test spent four tokens of this client's ten.
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) statuses.push((await get(`${(i % 2 ? a : b).url}/x`)).status);
    const limited = statuses.filter((s) => s === 429).length;
    expect(statuses.filter((s) => s === 200).length).toBe(6);
    expect(limited).toBe(4);
    const refused = await get(`${a.url}/x`);
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(refused.json).toMatchObject({ error: 'rate_limited' });
  });
});

/** Seed 002's shared round-robin index: one rotation across instances, not one per process. */
describe('sharedRoundRobin on two instances sharing Redis', () => {
  let redis: RedisServer;
  let a: ProxyUnderTest;
  let b: ProxyUnderTest;
  const backends: Backend[] = [];

  beforeAll(async () => {
    redis = await RedisServer.start();
    backends.push(await startBackend('x'), await startBackend('y'), await startBackend('z'));
    const proxy = { backends: backends.map((x) => ({ host: '127.0.0.1', port: x.port })), pools: { web: { policy: 'round-robin', sharedRoundRobin: true } } };
    a = await startProxy(proxy, { env: { REDIS_URL: redis.url } });
    b = await startProxy(proxy, { env: { REDIS_URL: redis.url } });
  }, 30_000);

  afterAll(async () => {
    await a?.close();
    await b?.close();
    for (const x of backends) await x.stop();
    await redis?.stop();
  });

  it('requests alternating between the instances still visit the backends in one rotation', async () => {
    // Both instances' views settle first (each must list all three backends as candidates).
    await until(async () => [a, b].every((p) => p.sb.proxy!.balancers.get('web')!.candidates.length === 3), 5_000, 'three candidates on both instances');
    const seen: unknown[] = [];
    for (let i = 0; i < 12; i++) seen.push((await get(`${(i % 2 ? a : b).url}/r`)).json?.backend);
    // With a position per process, alternating instances would each see every other step of its
    // own rotation (x z y x z y ... per instance, merged into pairs); one shared counter gives a
    // strict cycle of period 3 over the merged sequence.
    expect(seen.slice(3), seen.join(" ")).toEqual(seen.slice(0, -3));
    expect(new Set(seen.slice(0, 3)).size).toBe(3);
    expect(Number(await redisGet(redis.port, 'sb:{web}:rr'))).toBeGreaterThanOrEqual(12);
  });
});

async function redisGet(port: number, key: string): Promise<string> {
  const { Redis } = await import('ioredis');
  const c = new Redis({ port, host: '127.0.0.1', lazyConnect: true });
  await c.connect();
  try {
    return (await c.get(key)) ?? '';
  } finally {
    c.disconnect();
  }
}
