import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Server } from '../../src/core/model.js';
import { AppError } from '../../src/errors.js';
import { OriginService, ORIGINS_POOL } from '../../src/pools/origins/service.js';
import { parseSrsRegister } from '../../src/pools/origins/srs.js';
import { streamKey } from '../../src/pools/origins/stream-key.js';
import { PENDING_TTL_MS, StreamService, type StreamServiceDeps } from '../../src/pools/origins/streams.js';
import { MemoryStore } from '../../src/store/memory.js';
import { RedisStore } from '../../src/store/redis/index.js';
import type { StateStore } from '../../src/store/store.js';
import { RedisServer } from '../helpers/redis.js';

/**
 * Issue 16 items 3 and 4: stream-sticky origin selection (a stream → one origin, on every instance)
 * and the HLS/WebRTC session indexes, on the memory store and on two instances sharing a real Redis.
 */

let redis: RedisServer;
beforeAll(async () => {
  redis = await RedisServer.start();
});
afterAll(async () => {
  await redis?.dispose();
});

const open: StateStore[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

/** SRS's register body for one origin (as its heartbeat sends it). */
function srsBody(server: string, port: number) {
  return { ip: '127.0.0.1', server, service: 'svc0001', pid: String(port), rtmp: [String(port)], http: [String(port + 1)], api: [String(port + 2)] };
}

interface Setup {
  /** Two instances: same store object (memory) or two RedisStores on one Redis and prefix. */
  stores: [StateStore, StateStore];
  streams: [StreamService, StreamService];
  origins: Server[];
}

let prefixes = 0;

async function setup(kind: 'memory' | 'redis', extra: Partial<StreamServiceDeps> = {}, registerOrigins = 2): Promise<Setup> {
  let stores: [StateStore, StateStore];
  if (kind === 'memory') {
    const store = new MemoryStore();
    stores = [store, store];
  } else {
    const prefix = `sbstreams${++prefixes}`;
    const make = async () => {
      const s = new RedisStore({ connection: { mode: 'standalone', url: redis.url }, prefix, pools: [ORIGINS_POOL] });
      await s.start();
      return s;
    };
    stores = [await make(), await make()];
  }
  open.push(...new Set(stores));
  const service = new OriginService({ store: stores[0], config: { aliveSeconds: 300 }, instanceId: 'i0' });
  const origins: Server[] = [];
  for (let i = 0; i < registerOrigins; i++) origins.push((await service.register(parseSrsRegister(srsBody(`srs${i}`, 19350 + 10 * i)))).server);
  // The second instance has heard of the registrations.
  await expect.poll(() => stores[1].listServers(ORIGINS_POOL).length).toBe(registerOrigins);
  const streams = stores.map((store, i) => new StreamService({ store, instanceId: `i${i}`, ...extra })) as [StreamService, StreamService];
  return { stores, streams, origins };
}

async function status(p: Promise<unknown>): Promise<{ statusCode: number; code: string }> {
  try {
    await p;
  } catch (err) {
    if (err instanceof AppError) return { statusCode: err.statusCode, code: err.code };
    throw err;
  }
  throw new Error('expected an AppError');
}

async function makeUnhealthy(store: StateStore, id: string): Promise<void> {
  const s = store.getServer(ORIGINS_POOL, id)!;
  const t = Date.now();
  await store.recordHealth(ORIGINS_POOL, id, s.epoch, { status: 'unhealthy', successes: 0, failures: 1, since: t, lastCheck: t, lastError: 'test' });
}

for (const kind of ['memory', 'redis'] as const) {
  describe(`stream-sticky origins (${kind} store)`, () => {

    it('a mapping left unconfirmed by an instance killed mid-locate is reclaimed by the next locate', async () => {
      let now = Date.now();
      const { stores, streams } = await setup(kind, { now: () => now });
      const key = '__defaultVhost__/live/orphan';
      // The first instance dies between reserve and confirm: its confirm never happens.
      const confirm = stores[0].confirm.bind(stores[0]);
      stores[0].confirm = () => Promise.reject(new Error('killed'));
      await expect(streams[0].locate(key, 'publish')).rejects.toThrow('killed');
      stores[0].confirm = confirm;
      await expect.poll(() => stores[1].getPlacement(ORIGINS_POOL, key)?.state).toBe('pending');
      now += PENDING_TTL_MS + 1_000;
      const origin = await streams[1].locate(key, 'publish');
      await expect.poll(() => stores[1].getPlacement(ORIGINS_POOL, key)?.state).toBe('ready');
      expect(stores[1].getPlacement(ORIGINS_POOL, key)?.serverId).toBe(origin.id);
    });
    it('spreads 50 streams over both origins, each staying on its origin on every instance', async () => {
      const { stores, streams, origins } = await setup(kind);
      const keys = Array.from({ length: 50 }, (_, i) => streamKey(undefined, 'live', `s${i}`));
      const first = new Map<string, string>();
      for (const [i, key] of keys.entries()) first.set(key, (await streams[i % 2]!.locate(key, i % 3 ? 'play' : 'publish')).id);
      const counts = new Map<string, number>();
      for (const id of first.values()) counts.set(id, (counts.get(id) ?? 0) + 1);
      expect([...counts.keys()].sort()).toEqual(origins.map((o) => o.id).sort());
      for (const n of counts.values()) expect(n).toBeGreaterThanOrEqual(5);
      for (let round = 0; round < 3; round++) {
        for (const [i, key] of keys.entries()) {
          expect((await streams[(i + round) % 2]!.locate(key, round === 1 ? 'publish' : 'play')).id).toBe(first.get(key));
        }
      }
      // Mappings are ready placements of one unit, visible to both instances.
      await expect.poll(() => stores[1].listPlacements(ORIGINS_POOL).length).toBe(50);
      expect(stores[0].getPlacement(ORIGINS_POOL, keys[0]!)).toMatchObject({ state: 'ready', units: 1, serverId: first.get(keys[0]!) });
      expect(streams[1].mappedOrigin(keys[7]!)).toBe(first.get(keys[7]!));
    });

    it('two instances racing on a new stream 20 times at once all name the same origin', async () => {
      const { streams } = await setup(kind);
      for (let n = 0; n < 5; n++) {
        const key = streamKey('race.example.com', 'live', `race${n}`);
        const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => streams[i % 2]!.locate(key, i % 2 ? 'play' : 'publish')));
        expect(new Set(answers.map((s) => s.id)).size).toBe(1);
      }
    });

    it('another instance sees a new mapping within a second', async () => {
      const { streams } = await setup(kind);
      const key = streamKey(undefined, 'live', 'seen');
      const origin = await streams[0].locate(key, 'publish');
      const t = Date.now();
      await expect.poll(() => streams[1].mappedOrigin(key), { timeout: 1000, interval: 10 }).toBe(origin.id);
      expect(Date.now() - t).toBeLessThan(1000);
    });

    it('an unhealthy origin: publish moves its streams, play answers 503 origin_unavailable', async () => {
      const { stores, streams, origins } = await setup(kind);
      const keys = Array.from({ length: 20 }, (_, i) => streamKey(undefined, 'live', `h${i}`));
      const before = new Map<string, string>();
      for (const key of keys) before.set(key, (await streams[0].locate(key, 'publish')).id);
      const dead = origins[0]!.id;
      const alive = origins[1]!.id;
      const onDead = keys.filter((k) => before.get(k) === dead);
      const onAlive = keys.filter((k) => before.get(k) === alive);
      expect(onDead.length).toBeGreaterThan(0);
      await makeUnhealthy(stores[0], dead);
      await expect.poll(() => stores[1].getServer(ORIGINS_POOL, dead)?.health.status).toBe('unhealthy');
      for (const key of onDead) {
        const started = Date.now();
        expect(await status(streams[1].locate(key, 'play'))).toEqual({ statusCode: 503, code: 'origin_unavailable' });
        expect(Date.now() - started).toBeLessThan(200); // at once, not a hang
      }
      for (const key of onAlive) expect((await streams[1].locate(key, 'play')).id).toBe(alive);
      // A new publish of each of its streams goes to the alive origin, and players follow it.
      for (const [i, key] of onDead.entries()) expect((await streams[i % 2]!.locate(key, 'publish')).id).toBe(alive);
      for (const key of onDead) expect((await streams[0].locate(key, 'play')).id).toBe(alive);
      await expect.poll(() => stores[1].listPlacements(ORIGINS_POOL, dead).length).toBe(0);
    });

    it('publishers racing to move a stream off a dead origin all land on the same new origin', async () => {
      const { stores, streams, origins } = await setup(kind, {}, 3);
      const dead = origins[0]!.id;
      const keys: string[] = [];
      for (let i = 0; keys.length < 4 && i < 200; i++) {
        const key = streamKey(undefined, 'live', `m${i}`);
        if ((await streams[0].locate(key, 'publish')).id === dead) keys.push(key);
      }
      expect(keys).toHaveLength(4);
      await makeUnhealthy(stores[0], dead);
      await expect.poll(() => stores[1].getServer(ORIGINS_POOL, dead)?.health.status).toBe('unhealthy');
      for (const key of keys) {
        const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => streams[i % 2]!.locate(key, 'publish')));
        const ids = new Set(answers.map((s) => s.id));
        expect(ids.size).toBe(1);
        expect(ids.has(dead)).toBe(false);
        expect((await streams[1].locate(key, 'play')).id).toBe(answers[0]!.id);
      }
    });

    it('a draining origin keeps its streams; a new stream goes elsewhere', async () => {
      const { stores, streams, origins } = await setup(kind);
      const keys = Array.from({ length: 10 }, (_, i) => streamKey(undefined, 'live', `d${i}`));
      const before = new Map<string, string>();
      for (const key of keys) before.set(key, (await streams[0].locate(key, 'publish')).id);
      await stores[0].setAdminState(ORIGINS_POOL, origins[0]!.id, 'drain');
      await expect.poll(() => stores[1].getServer(ORIGINS_POOL, origins[0]!.id)?.adminState).toBe('drain');
      for (const key of keys) {
        expect((await streams[1].locate(key, 'play')).id).toBe(before.get(key));
        expect((await streams[1].locate(key, 'publish')).id).toBe(before.get(key));
      }
      for (let i = 0; i < 10; i++) expect((await streams[1].locate(streamKey(undefined, 'live', `new${i}`), 'publish')).id).toBe(origins[1]!.id);
    });

    it('no alive origin: any registered one, unmapped; none registered: 503 no_origin', async () => {
      const { stores, streams, origins } = await setup(kind);
      for (const o of origins) await makeUnhealthy(stores[0], o.id);
      await expect.poll(() => stores[1].listServers(ORIGINS_POOL).filter((s) => s.health.status === 'unhealthy').length).toBe(2);
      const seen = new Set<string>();
      for (let i = 0; i < 30; i++) {
        const key = streamKey(undefined, 'live', `any${i}`);
        const server = await streams[i % 2]!.locate(key, i % 2 ? 'play' : 'publish');
        seen.add(server.id);
        expect(stores[0].getPlacement(ORIGINS_POOL, key)).toBeUndefined();
      }
      expect([...seen].sort()).toEqual(origins.map((o) => o.id).sort());

      const empty = await setup(kind, {}, 0);
      expect(await status(empty.streams[0].locate(streamKey(undefined, 'live', 'x'), 'publish'))).toEqual({ statusCode: 503, code: 'no_origin' });
    });

    it('forget releases a mapping (unpublish); the next publish may pick any alive origin', async () => {
      const { stores, streams } = await setup(kind);
      const key = streamKey(undefined, 'live', 'gone');
      const origin = await streams[0].locate(key, 'publish');
      expect(await streams[1].forget(key)).toBe(true);
      expect(await streams[1].forget(key)).toBe(false);
      await expect.poll(() => stores[0].getPlacement(ORIGINS_POOL, key)).toBeUndefined();
      expect(stores[0].getServer(ORIGINS_POOL, origin.id)!.reserved).toBe(0);
      expect((await streams[0].locate(key, 'publish')).id).toMatch(/^srs/);
    });

    it('session indexes: HLS and WebRTC round-trip across instances, renew on read, expire', async () => {
      const { streams } = await setup(kind, { sessionTtlMs: 400 });
      const key = streamKey(undefined, 'live', 'sess');
      await streams[0].indexHls(key, 'spbhid-1');
      await streams[0].indexRtc(key, 'uf:rag/1');
      expect(await streams[1].streamBySpbhid('spbhid-1')).toBe(key);
      expect(await streams[1].streamByUfrag('uf:rag/1')).toBe(key);
      expect(await streams[1].streamBySpbhid('uf:rag/1')).toBeUndefined();
      expect(await streams[1].streamByUfrag('nope')).toBeUndefined();
      // Renewed by reads: alive well past its 400 ms TTL while it keeps being used.
      for (let i = 0; i < 4; i++) {
        await new Promise((r) => setTimeout(r, 250));
        expect(await streams[i % 2]!.streamBySpbhid('spbhid-1')).toBe(key);
      }
      // The ufrag was not read since: expired.
      expect(await streams[0].streamByUfrag('uf:rag/1')).toBeUndefined();
      await new Promise((r) => setTimeout(r, 600));
      expect(await streams[0].streamBySpbhid('spbhid-1')).toBeUndefined();
      expect(await status(streams[0].indexHls(key, ''))).toEqual({ statusCode: 400, code: 'bad_request' });
      expect(await status(streams[0].streamByUfrag('a\u0000'))).toEqual({ statusCode: 400, code: 'bad_request' });
    });
  });
}
