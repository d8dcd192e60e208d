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
