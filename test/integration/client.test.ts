import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SwitchboardClient, SwitchboardError, UnknownServerError, type RetryEvent } from '../../src/client/index.js';
import { until } from '../helpers/http.js';
import { freePort } from '../helpers/ports.js';
import { startSwitchboard, type SwitchboardProcess } from '../helpers/process.js';
import { RedisServer } from '../helpers/redis.js';
import { startSfu, type Sfu } from '../helpers/sfu.js';

/**
 * The client SDK against a real Switchboard (`switchboard serve`, built, on Redis, with a token)
 * and a stand-in mediasoup server.
 */
const TOKEN = 'client-test-token';
let redis: RedisServer;
let sb: SwitchboardProcess;
let sfu: Sfu;
const clients: SwitchboardClient<'rooms' | 'turn'>[] = [];

function client<P extends 'rooms' | 'turn' = 'rooms'>(serverId: string, extra: Partial<ConstructorParameters<typeof SwitchboardClient<P>>[0]> = {}): SwitchboardClient<P> {
  const c = new SwitchboardClient<P>({ url: sb.url, serverId, token: TOKEN, minRetryDelayMs: 20, maxRetryDelayMs: 200, ...extra });
  clients.push(c as SwitchboardClient<'rooms' | 'turn'>);
  return c;
}

async function api(method: string, path: string, body?: unknown) {
  const res = await fetch(sb.url + path, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

beforeAll(async () => {
  redis = await RedisServer.start();
  sfu = await startSfu();
  sb = await startSwitchboard({ env: { REDIS_URL: redis.url, AUTH_TOKEN: TOKEN, HEALTH_CHECK_INTERVAL: '500' } });
}, 60_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await sb?.stop();
  await sfu?.stop();
  await redis?.dispose();
});

describe('switchboard/client against Switchboard', () => {
  it('resolves as the package export switchboard/client', async () => {
    const spec = 'switchboard/client';
    const mod = (await import(spec)) as Record<string, unknown>;
    expect(typeof mod.SwitchboardClient).toBe('function');
    expect(typeof mod.SwitchboardError).toBe('function');
    expect(typeof mod.UnknownServerError).toBe('function');
  });

  it('needs the token: 401 naming headers.authorization without it, not retried', async () => {
    const anonymous = new SwitchboardClient({ url: sb.url, serverId: 'no-token', minRetryDelayMs: 10 });
    clients.push(anonymous);
    const err = (await anonymous.register({ serviceUrl: sfu.url, workers: 1 }).catch((e: unknown) => e)) as SwitchboardError;
    expect(err).toBeInstanceOf(SwitchboardError);
    expect(err).toMatchObject({ kind: 'http', status: 401, code: 'unauthorized', field: 'headers.authorization', attempts: 1 });
    const wrong = client('wrong-token', { token: 'nope' });
    await expect(wrong.register({ serviceUrl: sfu.url, workers: 1 })).rejects.toMatchObject({ status: 401, reason: 'wrong token' });
  });

  it('registers, heartbeats, drains, undrains, closes rooms and deregisters (rooms pool)', async () => {
    const c = client('sdk-sfu');
    expect(await c.getServer()).toBeUndefined();
    await expect(c.register({ serviceUrl: sfu.url, workers: 2, region: 'eu', labels: { rack: 'r1' } })).resolves.toEqual({ message: 'Server registered successfully' });
    const view = await c.getServer();
    expect(view).toMatchObject({ serverId: 'sdk-sfu', capacity: 1000, region: 'eu', labels: { rack: 'r1' }, adminState: 'active', placements: 0 });

    const beat = await c.heartbeat({ consumers: 120, cpu: 35 });
    expect(beat.reported).toEqual({ consumers: 120, cpu: 35 });
    expect(beat.used).toBe(120);
    expect((await c.getServer())?.reported.consumers).toBe(120);

    const room = await api('POST', '/rooms/sdk-room', {});
    expect(room.status, JSON.stringify(room.body)).toBe(200);
    expect((await c.getServer())?.placements).toBe(1);

    expect((await c.drain()).adminState).toBe('drain');
    expect((await c.undrain()).adminState).toBe('active');

    await expect(c.roomClosed('sdk-room')).resolves.toEqual({ message: 'Room closed notification processed successfully' });
    expect((await c.getServer())?.placements).toBe(0);
    // Closing it again: a 404 naming the room, not retried.
    await expect(c.roomClosed('sdk-room')).rejects.toMatchObject({ status: 404, code: 'not_found', field: 'roomId', attempts: 1 });

    expect((await c.deregister()).serverId).toBe('sdk-sfu');
    expect(await c.getServer()).toBeUndefined();
    await expect(c.deregister()).rejects.toMatchObject({ status: 404, code: 'not_found' });
  });

  it('a heartbeat for an unknown server is an UnknownServerError (register again)', async () => {
    const c = client('sdk-unknown');
    const err = await c.heartbeat({ consumers: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnknownServerError);
    expect(err).toMatchObject({ status: 404, code: 'unknown_server', field: 'serverId', attempts: 1 });
    await c.register({ serviceUrl: sfu.url, workers: 1 });
    expect((await c.heartbeat({ consumers: 1 })).reported.consumers).toBe(1);
    await c.deregister();
  });

  it("errors carry the field of a 400, and 4xx are never retried", async () => {
    const retries: RetryEvent[] = [];
    const c = client('sdk-bad', { onRetry: (e) => retries.push(e) });
    const err = (await c.register({ serviceUrl: sfu.url, workers: 0 }).catch((e: unknown) => e)) as SwitchboardError;
    expect(err).toMatchObject({ kind: 'http', status: 400, code: 'bad_request', field: 'body.workers', attempts: 1 });
    expect(err.message).toMatch(/body\.workers/);
    await expect(c.register({ serviceUrl: 'not a url', workers: 1 })).rejects.toMatchObject({ status: 400, field: 'body.serviceUrl' });
    await expect(c.heartbeat({ consumers: -1 })).rejects.toMatchObject({ status: 400, field: 'body.load.consumers' });
    const badId = client('bad id with spaces');
    await expect(badId.heartbeat()).rejects.toMatchObject({ status: 400, field: 'body.serverId' });
    expect(retries).toEqual([]);
  });

  it('TURN pool: register, heartbeat allocations, find, deregister', async () => {
    const port = await freePort();
    const t = client<'turn'>('sdk-turn', { pool: 'turn' });
    const registered = await t.register({ host: '127.0.0.1', port, region: 'eu' });
    expect(registered).toMatchObject({ serverId: 'sdk-turn', kind: 'turn', region: 'eu' });
    expect((await t.heartbeat({ allocations: 7 })).reported.allocations).toBe(7);
    expect((await t.getServer())?.reported).toEqual({ allocations: 7 });
    expect((await t.deregister()).serverId).toBe('sdk-turn');
    expect(await t.getServer()).toBeUndefined();
    await expect(t.heartbeat({ allocations: 1 })).rejects.toBeInstanceOf(UnknownServerError);
  });

  it('retries a 503 (Redis down), honouring Retry-After, and succeeds once Redis is back', async () => {
    const retries: RetryEvent[] = [];
    const c = client('sdk-503', { retries: 30, onRetry: (e) => retries.push(e) });
    await redis.stop();
    let registering: Promise<unknown> | undefined;
    try {
      await until(async () => ((await (await fetch(`${sb.url}/healthz`)).json()) as { storeAvailable: boolean }).storeAvailable === false, 5000, 'Switchboard to notice Redis is down');
      registering = c.register({ serviceUrl: sfu.url, workers: 1 });
      await until(async () => retries.length >= 2, 10_000, 'two retries');
    } finally {
      await redis.restart();
    }
    // The same call, still retrying, succeeds once Redis is back.
    await expect(registering).resolves.toEqual({ message: 'Server registered successfully' });
    expect(retries.length).toBeGreaterThanOrEqual(2);
    expect(retries[0]!.error).toMatchObject({ status: 503, code: 'store_unavailable' });
    // Switchboard answers 503 with Retry-After: 1 — the wait is that, not the 20 ms backoff.
    expect(retries[0]!.delayMs).toBe(1000);
    expect((await c.getServer())?.serverId).toBe('sdk-503');
  }, 40_000);

  it('retries connection errors with backoff, then fails with the error code', async () => {
    const port = await freePort();
    const retries: RetryEvent[] = [];
    const c = new SwitchboardClient({ url: `http://127.0.0.1:${port}`, serverId: 'nowhere', retries: 3, minRetryDelayMs: 20, maxRetryDelayMs: 50, onRetry: (e) => retries.push(e) });
    clients.push(c);
    const err = (await c.heartbeat({ consumers: 1 }).catch((e: unknown) => e)) as SwitchboardError;
    expect(err).toMatchObject({ kind: 'network', code: 'ECONNREFUSED', attempts: 4, status: undefined });
    expect(retries.map((r) => r.attempt)).toEqual([1, 2, 3]);
    for (const r of retries) expect(r.delayMs).toBeLessThanOrEqual(50);
  });

  it('bounds each attempt by timeoutMs, and a caller signal ends the call', async () => {
    // Accepts connections and never answers.
    const sockets = new Set<Socket>();
    const silent: Server = createServer((s) => void sockets.add(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const { port } = silent.address() as { port: number };
    try {
      const c = new SwitchboardClient({ url: `http://127.0.0.1:${port}`, serverId: 'slow', timeoutMs: 200, retries: 1, minRetryDelayMs: 10 });
      clients.push(c);
      const started = Date.now();
      const err = (await c.getServer().catch((e: unknown) => e)) as SwitchboardError;
      expect(err).toMatchObject({ kind: 'timeout', code: 'timeout', attempts: 2 });
      expect(Date.now() - started).toBeLessThan(2000);

      const aborted = (await c.getServer({ signal: AbortSignal.timeout(100), timeoutMs: 5000 }).catch((e: unknown) => e)) as SwitchboardError;
      expect(aborted).toMatchObject({ kind: 'aborted', code: 'aborted', attempts: 1 });
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  });
});
