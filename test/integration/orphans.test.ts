import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { call, until, type Json } from '../helpers/http.js';
import { startSwitchboard, type SwitchboardProcess } from '../helpers/process.js';
import { RedisServer } from '../helpers/redis.js';
import { startNotifySink, startSfu, type Sfu } from '../helpers/sfu.js';

/**
 * No crash, outage or shutdown leaves a room pending forever or its units booked twice: a pending
 * placement has an owner and a deadline, after which any instance reclaims it.
 */
const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function setup(opts: { instances: number; yaml?: string; env?: Record<string, string> }) {
  const redis = await RedisServer.start();
  cleanup.push(() => redis.dispose());
  const sfu = await startSfu();
  cleanup.push(() => sfu.stop());
  const args: string[] = [];
  if (opts.yaml) {
    const file = join(mkdtempSync(join(tmpdir(), 'sb-orphans-')), 'switchboard.yaml');
    writeFileSync(file, opts.yaml);
    args.push('--config-file', file);
  }
  const env = { REDIS_URL: redis.url, HEALTH_CHECK_INTERVAL: '60000', ...opts.env };
  const instances: SwitchboardProcess[] = [];
  for (let i = 0; i < opts.instances; i++) {
    const p = await startSwitchboard({ env, args });
    cleanup.push(() => p.stop('SIGKILL'));
    instances.push(p);
  }
  expect((await call(instances[0]!.url, 'POST', '/register', { serverId: 's1', serviceUrl: sfu.url, workers: 1 })).status).toBe(200);
  return { redis, sfu, instances };
}

const reserved = async (url: string) => ((await call(url, 'GET', '/servers/s1')).body as Json).reserved;

async function waitForCall(sfu: Sfu, n: number): Promise<void> {
  await until(async () => sfu.calls >= n, 10_000, `the media server to be asked for a room (${n})`);
}

describe('pending placements whose owner is gone', () => {
  it('an instance killed during creation: another places the room within 30 s, its units booked once', async () => {
    const { sfu, instances } = await setup({ instances: 2 });
    const [a, b] = instances as [SwitchboardProcess, SwitchboardProcess];
    sfu.setRoomMode('hang');
    void call(a.url, 'POST', '/rooms/orphan', {}).catch(() => undefined);
    await waitForCall(sfu, 1);
    a.child.kill('SIGKILL');
    await until(async () => a.child.exitCode !== null || a.child.signalCode !== null, 5000, 'instance A to die');
    expect(await reserved(b.url)).toBe(4);
    expect((await call(b.url, 'GET', '/rooms/orphan')).body).toMatchObject({ state: 'pending' });

    sfu.setRoomMode('ok');
    const started = performance.now();
    const res = await call(b.url, 'POST', '/rooms/orphan', {});
    const tookMs = performance.now() - started;
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body).toMatchObject({ roomId: 'orphan' });
    expect(tookMs).toBeLessThan(30_000);
    expect(await reserved(b.url)).toBe(4);
    expect((await call(b.url, 'GET', '/rooms/orphan')).body).toMatchObject({ state: 'ready' });
  }, 60_000);

  it('a Redis outage between reserve and confirm: the client gets 503, the room is placed again later, units booked once', async () => {
    const { redis, sfu, instances } = await setup({ instances: 1 });
    const [a] = instances as [SwitchboardProcess];
    sfu.setRoomDelay(1500);
    const pending = call(a.url, 'POST', '/rooms/cut', {});
    await waitForCall(sfu, 1);
    await redis.stop();
    const res = await pending;
    expect(res.status).toBe(503);
    expect(res.body).toMatchObject({ error: 'store_unavailable' });
    await redis.restart();
    await until(async () => (await call(a.url, 'GET', '/healthz')).body.storeAvailable === true, 15_000, 'reconnect');
    // Restored from this instance's view: the server, and the room still pending with its units.
    await until(async () => (await reserved(a.url)) === 4, 5000, 'the restore');
    sfu.setRoomDelay(0);
    const again = await call(a.url, 'POST', '/rooms/cut', {});
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    expect(await reserved(a.url)).toBe(4);
    expect((await call(a.url, 'GET', '/rooms/cut')).body).toMatchObject({ state: 'ready' });
  }, 60_000);

  it('the sweeper reclaims an abandoned placement without anyone asking for the room', async () => {
    const { sfu, instances } = await setup({ instances: 2, yaml: 'rooms:\n  createTimeoutMs: 500\n  pendingGraceMs: 500\n' });
    const [a, b] = instances as [SwitchboardProcess, SwitchboardProcess];
    sfu.setRoomDelay(60_000);
    void call(a.url, 'POST', '/rooms/abandoned', {}).catch(() => undefined);
    await waitForCall(sfu, 1);
    a.child.kill('SIGKILL');
    expect(await reserved(b.url)).toBe(4);
    await until(async () => (await reserved(b.url)) === 0, 5000, 'the sweeper to release the abandoned room');
    expect((await call(b.url, 'GET', '/rooms/abandoned')).status).toBe(404);
  }, 30_000);
});

describe('a server leaving while a room is created on it', () => {
  it('does not announce room-lost to an owner whose request then succeeds on another server', async () => {
    const { sfu, instances } = await setup({ instances: 1 });
    const [a] = instances as [SwitchboardProcess];
    const sink = await startNotifySink();
    cleanup.push(() => sink.stop());
    const other = await startSfu();
    cleanup.push(() => other.stop());
    // s1 has more room, so it is tried first; it answers slowly and is deregistered meanwhile.
    expect((await call(a.url, 'POST', '/register', { serverId: 's2', serviceUrl: other.url, workers: 1, capacity: 400 })).status).toBe(200);
    sfu.setRoomDelay(1000);
    const pending = call(a.url, 'POST', '/rooms/moving', { eventNotificationUri: `${sink.url}/notify` });
    await waitForCall(sfu, 1);
    expect((await call(a.url, 'GET', '/rooms/moving')).body).toMatchObject({ serverId: 's1', state: 'pending' });
    expect((await call(a.url, 'DELETE', '/servers/s1')).status).toBe(200);
    const res = await pending;
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect((await call(a.url, 'GET', '/rooms/moving')).body).toMatchObject({ serverId: 's2', state: 'ready' });
    await new Promise((r) => setTimeout(r, 500));
    expect(sink.events).toEqual([]);
  }, 30_000);
});

describe('graceful shutdown with a slow media server', () => {
  it('answers the request under way with a JSON 503, releases its placement and exits 0 in time', async () => {
    const yaml = 'server:\n  shutdownTimeoutMs: 4000\nrooms:\n  createTimeoutMs: 20000\n  maxAttempts: 3\n';
    const { sfu, instances } = await setup({ instances: 2, yaml });
    const [a, b] = instances as [SwitchboardProcess, SwitchboardProcess];
    sfu.setRoomMode('hang');
    const pending = call(a.url, 'POST', '/rooms/slow', {});
    await waitForCall(sfu, 1);
    const started = performance.now();
    const exited = a.stop('SIGTERM');
    const res = await pending;
    expect(res.status).toBe(503);
    expect(res.body).toMatchObject({ error: 'shutting_down' });
    expect(await exited).toBe(0);
    expect(performance.now() - started).toBeLessThan(4000);
    expect(a.output()).not.toContain('"level":50');
    // Nothing left behind for the other instance.
    expect(await reserved(b.url)).toBe(0);
    expect((await call(b.url, 'GET', '/rooms/slow')).status).toBe(404);
  }, 30_000);
});

describe('Redis restarted from an older dump', () => {
  it('restores what the instances knew: no vanished server, no resurrected room, no split room', async () => {
    const { redis, instances } = await setup({ instances: 2, env: { HEALTH_CHECK_INTERVAL: '500', HEALTH_CHECK_TIMEOUT: '300', HEALTH_FAILURE_THRESHOLD: '3' } });
    const [a, b] = instances as [SwitchboardProcess, SwitchboardProcess];
    const sfu2 = await startSfu();
    cleanup.push(() => sfu2.stop());
    for (let i = 0; i < 10; i++) expect((await call(i % 2 ? a.url : b.url, 'POST', `/rooms/old-${i}`, {})).status).toBe(200);
    const raw = new Redis(redis.url);
    await raw.save(); // the dump Redis will come back from
    raw.disconnect();

    // After the dump: a new server, new rooms, a closed room.
    expect((await call(b.url, 'POST', '/register', { serverId: 's2', serviceUrl: sfu2.url, workers: 1 })).status).toBe(200);
    for (let i = 0; i < 20; i++) expect((await call(i % 2 ? a.url : b.url, 'POST', `/rooms/new-${i}`, {})).status).toBe(200);
    expect((await call(a.url, 'POST', '/room-closed', { serverId: 's1', roomId: 'old-0' })).status).toBe(200);
    const where = (await call(a.url, 'GET', '/rooms/new-5')).body.serverId;
    const before = JSON.stringify(((await call(a.url, 'GET', '/servers')).body.servers as Json[]).map((s) => [s.serverId, s.reserved]));

    await redis.stop();
    await redis.restart();
    for (const p of [a, b]) {
      await until(async () => (await call(p.url, 'GET', '/healthz')).body.storeAvailable === true, 15_000, 'reconnect');
    }
    let last = '';
    for (const p of [a, b]) {
      await until(
        async () => {
          last = JSON.stringify(((await call(p.url, 'GET', '/servers')).body.servers as Json[]).map((s) => [s.serverId, s.reserved]));
          return last === before;
        },
        10_000,
        () => `servers as before the restart: want ${before}, have ${last}\n${p.output().slice(-3000)}`,
      );
      expect((await call(p.url, 'GET', '/rooms/old-0')).status).toBe(404);
      expect((await call(p.url, 'GET', '/rooms/new-5')).body).toMatchObject({ serverId: where, state: 'ready' });
    }
    expect((await call(b.url, 'POST', '/heartbeat', { serverId: 's2', load: { consumers: 1 } })).status).toBe(200);
    // Exactly the remaining capacity can be placed: 2 × 500 consumers, 29 rooms of 4 held.
    const more = await Promise.all(Array.from({ length: 250 }, (_, i) => call(i % 2 ? a.url : b.url, 'POST', `/rooms/more-${i}`, {})));
    expect(more.filter((r) => r.status === 200)).toHaveLength(250 - 29);
    const servers = (await call(a.url, 'GET', '/servers')).body.servers as Json[];
    expect(servers.map((s) => s.reserved)).toEqual([500, 500]);
  }, 90_000);
});
