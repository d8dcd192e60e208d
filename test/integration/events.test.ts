import Fastify from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EventHub, eventRoutes } from '../../src/api/routes/events.js';
import { loadConfig } from '../../src/config/load.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { StateStore } from '../../src/store/store.js';
import { startSwitchboard, type Switchboard } from '../../src/switchboard.js';
import { RedisServer } from '../helpers/redis.js';
import { startSfu, type Sfu } from '../helpers/sfu.js';
import { SseClient, type Json } from '../helpers/sse.js';

/**
 * GET /events: a snapshot, then every change (this instance's and, on Redis, every instance's),
 * Last-Event-ID resume, heartbeats, coalesced bursts, a client cap and no leak on disconnect.
 */

const listenerCount = (store: StateStore) => (store as unknown as { listeners: Set<unknown> }).listeners.size;
const connections = (sb: { app: { server: { getConnections(cb: (err: Error | null, n: number) => void): void } } }) =>
  new Promise<number>((resolve, reject) => sb.app.server.getConnections((err, n) => (err ? reject(err) : resolve(n))));

async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const env = { APP_PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', HEALTH_CHECK_INTERVAL: '600000' };

async function api(sb: Switchboard, method: string, path: string, body?: unknown): Promise<{ status: number; body: Json }> {
  const res = await fetch(sb.url + path, { method, ...(body !== undefined ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {}) });
  return { status: res.status, body: (await res.json()) as Json };
}

const clients: SseClient[] = [];
const open = async (url: string, headers?: Record<string, string>) => {
  const c = await SseClient.open(url, headers);
  clients.push(c);
  return c;
};
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
});

describe('GET /events on one instance', () => {
  let sfu: Sfu;
  let sb: Switchboard;
  beforeAll(async () => {
    sfu = await startSfu();
    sb = await startSwitchboard(loadConfig({ env }));
  });
  afterAll(async () => {
    await sb?.close();
    await sfu?.stop();
  });

  it('sends a snapshot, then registrations, placements, drains and deregistrations as they happen', async () => {
    const c = await open(`${sb.url}/events`);
    const snapshot = await c.next((e) => e.event === 'snapshot', 'snapshot');
    expect(c.events[0]).toBe(snapshot);
    expect(snapshot.id).toMatch(/^[0-9a-f]+-\d+$/);
    expect(snapshot.data.pools.map((p: Json) => p.pool)).toEqual(['rooms', 'turn', 'origins']);
    expect(snapshot.data.pools[0]).toMatchObject({ pool: 'rooms', servers: [], placements: [], summary: { pool: 'rooms', servers: 0, placements: 0 } });

    expect((await api(sb, 'POST', '/register', { serverId: 'sfu-1', serviceUrl: sfu.url, workers: 1, region: 'eu' })).status).toBe(200);
    const registered = await c.next((e) => e.event === 'server' && e.data.server.serverId === 'sfu-1', 'server (registration)');
    expect(registered.data).toMatchObject({ pool: 'rooms', server: { serverId: 'sfu-1', capacity: 500, adminState: 'active', region: 'eu', placements: 0 } });

    expect((await api(sb, 'POST', '/rooms/room-1', {})).status).toBe(200);
    const placed = await c.next((e) => e.event === 'placement' && e.data.placement.id === 'room-1' && e.data.placement.state === 'ready', 'placement');
    expect(placed.data).toEqual({ pool: 'rooms', placement: { id: 'room-1', serverId: 'sfu-1', state: 'ready' } });
    await c.next((e) => e.event === 'server' && e.data.server.serverId === 'sfu-1' && e.data.server.placements === 1 && e.data.server.reserved === 4, 'server with the room');

    expect((await api(sb, 'POST', '/servers/sfu-1/drain')).status).toBe(200);
    await c.next((e) => e.event === 'server' && e.data.server.adminState === 'drain', 'server (drained)');

    expect((await api(sb, 'DELETE', '/servers/sfu-1')).status).toBe(200);
    const removed = await c.next((e) => e.event === 'server-removed', 'server-removed');
    expect(removed.data).toEqual({ pool: 'rooms', serverId: 'sfu-1' });
    await c.next((e) => e.event === 'placement-removed' && e.data.placement.id === 'room-1', 'placement-removed');

    // Ids increase by one per event, on this instance.
    const numbers = c.events.map((e) => Number(e.id!.split('-')[1]));
    for (let i = 2; i < numbers.length; i++) expect(numbers[i]).toBe(numbers[i - 1]! + 1);
  });

  it('replays what a client missed after Last-Event-ID, and sends a snapshot for an unknown or too old id', async () => {
    const a = await open(`${sb.url}/events`);
    await a.next((e) => e.event === 'snapshot', 'snapshot');
    await api(sb, 'POST', '/register', { serverId: 'sfu-2', serviceUrl: sfu.url, workers: 1 });
    await a.next((e) => e.event === 'server' && e.data.server.serverId === 'sfu-2', 'server sfu-2');
    const last = a.lastId!;
    await a.close();

    // Missed while away: a registration and a drain.
    await api(sb, 'POST', '/register', { serverId: 'sfu-3', serviceUrl: sfu.url, workers: 1 });
    await api(sb, 'POST', '/servers/sfu-2/drain');
    await new Promise((r) => setTimeout(r, 300)); // past a flush

    const b = await open(`${sb.url}/events`, { 'last-event-id': last });
    await b.next((e) => e.event === 'server' && e.data.server.serverId === 'sfu-2' && e.data.server.adminState === 'drain', 'replayed drain');
    expect(b.events.some((e) => e.event === 'snapshot')).toBe(false);
    expect(b.events[0]!.event).toBe('server');
    expect(b.events[0]!.data.server.serverId).toBe('sfu-3');
    expect(Number(b.events[0]!.id!.split('-')[1])).toBe(Number(last.split('-')[1]) + 1);

    // Same via the query (EventSource cannot set headers on its first connection).
    const q = await open(`${sb.url}/events?lastEventId=${encodeURIComponent(last)}`);
    await q.next((e) => e.event === 'server' && e.data.server.serverId === 'sfu-3', 'replayed registration (query)');
    expect(q.events[0]!.event).toBe('server');

    for (const id of ['deadbeef-1', 'nonsense', `${last.split('-')[0]}-999999999`]) {
      const s = await open(`${sb.url}/events`, { 'last-event-id': id });
      const first = await s.next(() => true, `first event for ${id}`);
      expect(first.event).toBe('snapshot');
      const rooms = first.data.pools.find((p: Json) => p.pool === 'rooms');
      expect(rooms.servers.map((x: Json) => x.serverId)).toEqual(expect.arrayContaining(['sfu-2', 'sfu-3']));
    }
    await api(sb, 'DELETE', '/servers/sfu-2');
    await api(sb, 'DELETE', '/servers/sfu-3');
  });

  it('omits placement lists with ?placements=0', async () => {
    const c = await open(`${sb.url}/events?placements=0`);
    const snapshot = await c.next((e) => e.event === 'snapshot', 'snapshot');
    for (const p of snapshot.data.pools) {
      expect(p).not.toHaveProperty('placements');
      expect(p.summary).toHaveProperty('placements');
    }
    expect((await fetch(`${sb.url}/events?placements=maybe`)).status).toBe(400);
  });

  it('coalesces a burst of 2,000 placements into a few writes and one snapshot', async () => {
    await api(sb, 'POST', '/register', { serverId: 'big', serviceUrl: sfu.url, workers: 1, capacity: 100_000 });
    const c = await open(`${sb.url}/events?placements=1`);
    await c.next((e) => e.event === 'snapshot', 'snapshot');
    const before = { events: c.events.length, chunks: c.chunks };
    await Promise.all(
      Array.from({ length: 2000 }, (_, i) => sb.store.reserve('rooms', { placementId: `burst-${i}`, units: 1, policy: 'most-free-capacity', now: Date.now() })),
    );
    const snap = await c.next((e) => e.event === 'snapshot' && e.data.pools[0].placements.length === 2000, 'snapshot after the burst', before.events);
    expect(snap.data.pools[0].summary).toMatchObject({ placements: 2000, used: 2000 });
    await new Promise((r) => setTimeout(r, 300));
    expect(c.events.length - before.events).toBeLessThan(10);
    expect(c.chunks - before.chunks).toBeLessThan(20);
    expect((await api(sb, 'DELETE', '/servers/big')).status).toBe(200);
    // Releasing 2,000 rooms is a burst too: one snapshot without them.
    await c.next((e) => e.event === 'snapshot' && e.data.pools[0].placements.length === 0, 'snapshot after the deregistration', before.events + 1);
  });

  it('adds no store listener per client and lets go of a client that disconnects', async () => {
    const base = listenerCount(sb.store);
    const many = await Promise.all(Array.from({ length: 5 }, () => open(`${sb.url}/events`)));
    await Promise.all(many.map((c) => c.next((e) => e.event === 'snapshot', 'snapshot')));
    expect(listenerCount(sb.store)).toBe(base);
    // Each stream holds a connection of its own (idle keep-alive ones may be counted too).
    const withStreams = await connections(sb);
    expect(withStreams).toBeGreaterThanOrEqual(5);
    await Promise.all(many.map((c) => c.close()));
    await until(async () => (await connections(sb)) <= withStreams - 5, 'streams closed on the server');
    expect(listenerCount(sb.store)).toBe(base);
    // Still serving the ones that stay.
    const c = await open(`${sb.url}/events`);
    await c.next((e) => e.event === 'snapshot', 'snapshot');
    expect((await api(sb, 'POST', '/turn/register', { host: '127.0.0.1', port: 3478 })).body).toMatchObject({ serverId: '127.0.0.1' });
    // As a change, or inside a snapshot when it fell into a burst's flush.
    await c.next(
      (e) =>
        (e.event === 'server' && e.data.pool === 'turn') ||
        (e.event === 'snapshot' && e.data.pools.some((p: Json) => p.pool === 'turn' && p.servers.some((x: Json) => x.serverId === '127.0.0.1'))),
      'turn registration',
    );
    await api(sb, 'DELETE', '/turn/servers/127.0.0.1');
  });

  it('is in the OpenAPI document with GET /pools', async () => {
    const doc = (await (await fetch(`${sb.url}/API/json`)).json()) as Json;
    expect(Object.keys(doc.paths['/events'].get.responses['200'].content)).toEqual(['text/event-stream']);
    expect(doc.paths['/events'].get.description).toContain('Last-Event-ID');
    expect(doc.paths['/pools'].get.responses['200'].content['application/json'].schema.type).toBe('array');
    const pools = await api(sb, 'GET', '/pools');
    expect(pools.body).toEqual([
      { pool: 'rooms', servers: 0, healthy: 0, placeable: 0, capacity: 0, used: 0, free: 0, placements: 0 },
      { pool: 'turn', servers: 0, healthy: 0, placeable: 0, capacity: 0, used: 0, free: 0, placements: 0 },
      { pool: 'origins', servers: 0, healthy: 0, placeable: 0, capacity: 0, used: 0, free: 0, placements: 0 },
    ]);
  });
});

describe('GET /events tuning', () => {
  it('sends heartbeats, caps clients with 503, and frees a slot on disconnect; close ends the streams', async () => {
    const store = new MemoryStore();
    await store.start();
    const app = Fastify();
    await app.register(eventRoutes, { hub: new EventHub(store, ['rooms'], { heartbeatMs: 50, maxClients: 2 }) });
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const a = await open(`${url}/events`);
      const b = await open(`${url}/events`);
      await until(() => a.comments >= 2 && b.comments >= 2, 'two heartbeats');
      const refused = await fetch(`${url}/events`);
      expect(refused.status).toBe(503);
      expect(refused.headers.get('retry-after')).toBe('5');
      expect(await refused.json()).toMatchObject({ error: 'too_many_clients' });
      await a.close();
      let c: SseClient | undefined;
      await until(async () => {
        const next = await open(`${url}/events`);
        if (next.status === 200) c = next;
        return next.status === 200;
      }, 'a free slot after a disconnect');
      await c!.next((e) => e.event === 'snapshot', 'snapshot');
      expect(listenerCount(store)).toBe(1);
      const t = Date.now();
      await app.close();
      expect(Date.now() - t).toBeLessThan(2000);
      expect(listenerCount(store)).toBe(0);
    } finally {
      await app.close();
      await store.close();
    }
  });
});

describe('GET /events on instances sharing one Redis', () => {
  let redis: RedisServer;
  let sfu: Sfu;
  let a: Switchboard;
  let b: Switchboard;
  beforeAll(async () => {
    redis = await RedisServer.start();
    sfu = await startSfu();
    const shared = { ...env, REDIS_URL: redis.url, REDIS_PREFIX: `events${Date.now()}` };
    a = await startSwitchboard(loadConfig({ env: shared }));
    b = await startSwitchboard(loadConfig({ env: shared }));
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await sfu?.stop();
    await redis?.dispose();
  });

  it("delivers a registration, a room and a drain made on another instance to this one's stream", async () => {
    const c = await open(`${a.url}/events`);
    await c.next((e) => e.event === 'snapshot', 'snapshot');
    expect((await api(b, 'POST', '/register', { serverId: 'remote-sfu', serviceUrl: sfu.url, workers: 2, region: 'us' })).status).toBe(200);
    const ev = await c.next((e) => e.event === 'server' && e.data.server.serverId === 'remote-sfu', 'registration from instance B');
    expect(ev.data).toMatchObject({ pool: 'rooms', server: { serverId: 'remote-sfu', capacity: 1000, region: 'us' } });
    expect((await api(b, 'POST', '/rooms/remote-room', {})).status).toBe(200);
    await c.next((e) => e.event === 'placement' && e.data.placement.id === 'remote-room' && e.data.placement.state === 'ready', 'room placed on B');
    await api(b, 'POST', '/servers/remote-sfu/drain');
    await c.next((e) => e.event === 'server' && e.data.server.adminState === 'drain', 'drain on B');
    await api(b, 'DELETE', '/servers/remote-sfu');
    await c.next((e) => e.event === 'server-removed' && e.data.serverId === 'remote-sfu', 'deregistration on B');
    // A's own GET /pools sees the same.
    expect((await api(a, 'GET', '/pools')).body[0]).toMatchObject({ pool: 'rooms', servers: 0, placements: 0 });
    // The dashboard's event log on A tells what happened on B, live and in GET /activity.
    const lost = await c.next((e) => e.event === 'activity' && e.data.kind === 'removed' && e.data.serverId === 'remote-sfu', 'activity (removed) from B');
    expect(lost.data.message).toBe('remote-sfu removed from rooms');
    const log = (await api(a, 'GET', '/activity')).body.entries.filter((e: Json) => e.serverId === 'remote-sfu').map((e: Json) => e.message);
    expect(log).toEqual([
      'remote-sfu registered in rooms in us, capacity 1000',
      // With why it went there, as instance B explained it: through Redis and back.
      'room remote-room placed on remote-sfu — most-free-capacity: ranked 1st of 1 eligible (of 1), 1000 of 1000 units free',
      'remote-sfu draining',
      'room remote-room lost with remote-sfu',
      'remote-sfu removed from rooms',
    ]);
  });

  it('lists the dashboard routes in the OpenAPI document', async () => {
    const doc = (await (await fetch(`${a.url}/API/json`)).json()) as Json;
    for (const path of ['/activity', '/stats/history', '/pools/{pool}/servers', '/pools/{pool}/servers/{id}/drain', '/pools/{pool}/servers/{id}']) expect(doc.paths[path], path).toBeDefined();
    expect(doc.paths['/dashboard/']).toBeUndefined();
  });
});
