import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, startPair, until, type Json, type Pair } from '../helpers/http.js';
import type { SwitchboardProcess } from '../helpers/process.js';
import type { Sfu } from '../helpers/sfu.js';

/**
 * Redis goes away under two serving instances and comes back empty (no persistence): reads keep
 * working from each instance's view, writes fail fast with 503, and afterwards the instances
 * restore what they knew, so nothing is double-booked.
 */

let pair: Pair;
let redis: Pair['redis'];
let sfus: Sfu[];
let a: SwitchboardProcess;
let b: SwitchboardProcess;

beforeAll(async () => {
  pair = await startPair(2, { HEALTH_CHECK_INTERVAL: '500', HEALTH_CHECK_TIMEOUT: '300', HEALTH_FAILURE_THRESHOLD: '3' });
  ({ redis, sfus, a, b } = pair);
}, 60_000);

afterAll(async () => {
  await pair?.stop();
});

describe('Redis restart under two instances', () => {
  it('serves reads from cache, fails writes fast, and restores without double-booking', async () => {
    // 2 servers × 500 consumers; rooms of 2 peers (4 consumers) → 250 rooms fit in all.
    await call(a.url, 'POST', '/register', { serverId: 's0', serviceUrl: sfus[0]!.url, workers: 1 });
    await call(b.url, 'POST', '/register', { serverId: 's1', serviceUrl: sfus[1]!.url, workers: 1 });
    const first = await Promise.all(Array.from({ length: 100 }, (_, i) => call(i % 2 ? a.url : b.url, 'POST', `/rooms/before-${i}`, {})));
    expect(first.every((r) => r.status === 200)).toBe(true);
    const reservedBefore = ((await call(a.url, 'GET', '/servers')).body.servers as Json[]).map((s) => [s.serverId, s.reserved]);

    await redis.stop();
    for (const instance of [a, b]) {
      await until(async () => (await call(instance.url, 'GET', '/healthz')).body.storeAvailable === false, 5000, 'instance to notice Redis is down');
      const servers = await call(instance.url, 'GET', '/servers');
      expect(servers.status).toBe(200);
      expect((servers.body.servers as Json[]).map((s) => [s.serverId, s.reserved])).toEqual(reservedBefore);
      expect((await call(instance.url, 'GET', '/rooms/before-1')).status).toBe(200);
      // Joining a room that is ready works as before (seed-000 clients join with the same POST).
      const join = await call(instance.url, 'POST', '/rooms/before-1', {});
      expect(join.status, JSON.stringify(join.body)).toBe(200);
      expect(join.body).toMatchObject({ roomId: 'before-1', protocol: '2060-mediasoup-v1' });
      const started = performance.now();
      const write = await call(instance.url, 'POST', '/rooms/during', {});
      expect(performance.now() - started).toBeLessThan(1000);
      expect(write.status).toBe(503);
      expect(write.body).toMatchObject({ error: 'store_unavailable' });
      expect(String(write.body.message)).toMatch(/Redis/);
      expect((await call(instance.url, 'POST', '/register', { serverId: 'x', serviceUrl: 'http://127.0.0.1:1', workers: 1 })).status).toBe(503);
    }

    await redis.restart();
    for (const instance of [a, b]) {
      await until(async () => (await call(instance.url, 'GET', '/healthz')).body.storeAvailable === true, 15_000, 'instance to reconnect');
    }
    // The instances wrote back what they knew: both see both servers with their reservations.
    let last = '';
    for (const instance of [a, b]) {
      await until(
        async () => {
          const res = await call(instance.url, 'GET', '/servers');
          expect(res.status, JSON.stringify(res.body)).toBe(200);
          last = JSON.stringify((res.body.servers as Json[]).map((s) => [s.serverId, s.reserved]));
          return last === JSON.stringify(reservedBefore);
        },
        5000,
        () => `servers restored: want ${JSON.stringify(reservedBefore)}, have ${last}\n${instance.output().slice(-4000)}`,
      );
      expect((await call(instance.url, 'GET', '/rooms/before-3')).body).toMatchObject({ state: 'ready' });
    }
    // Exactly the remaining capacity can still be placed: nothing is double-booked.
    const after = await Promise.all(Array.from({ length: 300 }, (_, i) => call(i % 2 ? a.url : b.url, 'POST', `/rooms/after-${i}`, {})));
    expect(after.filter((r) => r.status === 200)).toHaveLength(150);
    expect(after.filter((r) => r.status === 503)).toHaveLength(150);
    for (const instance of [a, b]) {
      const servers = (await call(instance.url, 'GET', '/servers')).body.servers as Json[];
      expect(servers.map((s) => s.reserved)).toEqual([500, 500]);
    }
    // The rooms placed before the restart are still known and can be closed.
    expect((await call(b.url, 'POST', '/room-closed', { serverId: (await call(a.url, 'GET', '/rooms/before-0')).body.serverId, roomId: 'before-0' })).status).toBe(200);
  }, 90_000);
});
