import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { loadConfig } from '../../src/config/load.js';
import { startSwitchboard, type Switchboard } from '../../src/switchboard.js';
import { startNotifySink, startSfu, type Sfu } from '../helpers/sfu.js';

/**
 * Rooms on SFUs through the HTTP API of an in-process Switchboard (memory store), with real HTTP
 * servers standing in for mediasoup servers.
 */
type Json = Record<string, unknown>;

async function call(base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await request(base + path, {
    method: method as 'GET',
    headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.body.text();
  return { status: res.statusCode, body: (text ? JSON.parse(text) : undefined) as Json };
}

const sfus: Sfu[] = [];
const instances: Switchboard[] = [];

async function sfu(): Promise<Sfu> {
  const s = await startSfu();
  sfus.push(s);
  return s;
}

async function switchboard(env: Record<string, string> = {}): Promise<Switchboard & { call: (m: string, p: string, b?: unknown, h?: Record<string, string>) => ReturnType<typeof call> }> {
  const config = loadConfig({ env: { APP_PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', HEALTH_CHECK_INTERVAL: '600000', ...env } });
  config.rooms.createTimeoutMs = 500;
  const sb = await startSwitchboard(config);
  instances.push(sb);
  return Object.assign(sb, { call: (m: string, p: string, b?: unknown, h?: Record<string, string>) => call(sb.url, m, p, b, h) });
}

async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<number> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return Date.now() - started;
}

afterEach(async () => {
  await Promise.all(instances.splice(0).map((i) => i.close()));
  await Promise.all(sfus.splice(0).map((s) => s.stop()));
});

describe('rooms on SFUs (seed 000 API)', () => {
  it('registers servers and places a room on the one with most free capacity, as the media server answers', async () => {
    const sb = await switchboard();
    const [a, b] = [await sfu(), await sfu()];
    expect(await sb.call('POST', '/register', { serverId: 'a', serviceUrl: a.url, workers: 1 })).toEqual({ status: 200, body: { message: 'Server registered successfully' } });
    expect((await sb.call('POST', '/register', { serverId: 'b', serviceUrl: b.url, workers: 2, region: 'eu', extraField: 'ignored' })).status).toBe(200);

    const room = await sb.call('POST', '/rooms/room-1', { eventNotificationUri: 'http://127.0.0.1:9/notify', maxPeerCount: 3 });
    expect(room).toEqual({ status: 200, body: { protocol: '2060-mediasoup-v1', wsUrl: `ws://127.0.0.1:${b.port}`, roomId: 'room-1' } });
    expect(b.rooms.get('room-1')).toEqual({ eventNotificationUri: 'http://127.0.0.1:9/notify', maxPeerCount: 3 });

    const servers = await sb.call('GET', '/servers');
    const byId = Object.fromEntries((servers.body.servers as Json[]).map((s) => [s.serverId, s]));
    expect(byId.a).toMatchObject({ capacity: 500, reserved: 0, healthy: true, placements: 0 });
    expect(byId.b).toMatchObject({ capacity: 1000, reserved: 12, free: 988, placements: 1, region: 'eu', attributes: { workers: 2 } });
    expect(await sb.call('GET', '/rooms/room-1')).toMatchObject({
      status: 200,
      body: { roomId: 'room-1', serverId: 'b', state: 'ready', consumers: 12, maxPeerCount: 3, answer: { wsUrl: `ws://127.0.0.1:${b.port}` } },
    });
  });

  it('tells why a room went to its server: GET /rooms/:roomId has why and whyText', async () => {
    const sb = await switchboard();
    const [a, b, c, bad] = [await sfu(), await sfu(), await sfu(), await sfu()];
    bad.setRoomMode('fail500');
    await sb.call('POST', '/register', { serverId: 'a', serviceUrl: a.url, workers: 1, region: 'eu' });
    await sb.call('POST', '/register', { serverId: 'b', serviceUrl: b.url, workers: 2, region: 'us' });
    await sb.call('POST', '/register', { serverId: 'c', serviceUrl: c.url, workers: 4, region: 'eu' });
    await sb.call('POST', '/register', { serverId: 'bad', serviceUrl: bad.url, workers: 3, region: 'eu' });
    expect((await sb.call('POST', '/servers/c/drain')).status).toBe(200);

    // eu: c is drained, bad (most free) fails the creation, so the second attempt excludes it.
    expect((await sb.call('POST', '/rooms/why-1', { region: 'eu', maxPeerCount: 3 })).status).toBe(200);
    expect(bad.calls).toBe(1);
    const one = await sb.call('GET', '/rooms/why-1');
    expect(one.status).toBe(200);
    expect(one.body).toMatchObject({ roomId: 'why-1', serverId: 'a', state: 'ready' });
    expect(one.body.why).toEqual({
      policy: 'most-free-capacity',
      servers: 4,
      eligible: 2,
      skipped: { draining: 1, excluded: 1 },
      region: { wanted: 'eu', local: true },
      ranked: [
        { id: 'a', free: 500, capacity: 500 },
        { id: 'b', free: 1000, capacity: 1000 },
      ],
    });
    expect(one.body.whyText).toBe('most-free-capacity: ranked 1st of 2 eligible (of 4; 1 draining, 1 excluded skipped), 500 of 500 units free, in region eu');

    // A region nobody serves: any region, and it says so.
    expect((await sb.call('POST', '/rooms/why-2', { region: 'ap' })).status).toBe(200);
    const two = await sb.call('GET', '/rooms/why-2');
    expect(two.body).toMatchObject({ serverId: 'b', why: { region: { wanted: 'ap', local: false }, ranked: [{ id: 'b' }, { id: 'a', free: 488 }] } });
    expect(two.body.whyText).toBe('most-free-capacity: ranked 1st of 2 eligible (of 4; 1 draining, 1 excluded skipped), 1000 of 1000 units free, none in region ap could take it, so any region');

    // The OpenAPI document describes both fields.
    const spec = (await sb.call('GET', '/API/json')).body as { paths: Record<string, { get?: { responses: Record<string, { content: Record<string, { schema: { properties: Json } }> }> } }> };
    const room = spec.paths['/rooms/{roomId}']!.get!.responses['200']!.content['application/json']!.schema.properties;
    expect(Object.keys(room)).toEqual(expect.arrayContaining(['why', 'whyText']));
  });

  it('returns the same placement for the same roomId, and generates a roomId when none is given', async () => {
    const sb = await switchboard();
    const a = await sfu();
    await sb.call('POST', '/register', { serverId: 'a', serviceUrl: a.url, workers: 1 });
    const [one, two] = await Promise.all([sb.call('POST', '/rooms/same', {}), sb.call('POST', '/rooms/same', {})]);
    expect(one).toEqual(two);
    expect((await sb.call('POST', '/rooms/same')).body).toEqual(one.body);
    expect(a.calls).toBe(1);
    expect((await sb.call('GET', '/servers/a')).body).toMatchObject({ reserved: 4 });

    const generated = await sb.call('POST', '/rooms', { maxPeerCount: 2 });
    expect(generated.status).toBe(200);
    expect(generated.body.roomId).toMatch(/^[0-9a-f-]{36}$/);
    expect((await sb.call('GET', `/rooms/${String(generated.body.roomId)}`)).status).toBe(200);
  });

  it('answers 503 with a JSON error when no server has room', async () => {
    const sb = await switchboard();
    expect(await sb.call('POST', '/rooms/x', {})).toMatchObject({ status: 503, body: { error: 'no_capacity' } });
    const a = await sfu();
    await sb.call('POST', '/register', { serverId: 'a', serviceUrl: a.url, workers: 1, capacity: 10 });
    expect((await sb.call('POST', '/rooms/fits', { maxPeerCount: 2 })).status).toBe(200);
    expect(await sb.call('POST', '/rooms/too-big', { maxPeerCount: 3 })).toMatchObject({ status: 503, body: { error: 'no_capacity' } });
    expect((await sb.call('GET', '/rooms/too-big')).status).toBe(404);
  });

  it('releases and tries the next server when the media server fails, and 502s when none accepts', async () => {
    const sb = await switchboard();
    const [bad, hang, good] = [await sfu(), await sfu(), await sfu()];
    bad.setRoomMode('fail500');
    hang.setRoomMode('hang');
    await sb.call('POST', '/register', { serverId: 'bad', serviceUrl: bad.url, workers: 3 });
    await sb.call('POST', '/register', { serverId: 'hang', serviceUrl: hang.url, workers: 2 });
    await sb.call('POST', '/register', { serverId: 'good', serviceUrl: good.url, workers: 1 });
    const res = await sb.call('POST', '/rooms/r', {});
    expect(res).toMatchObject({ status: 200, body: { roomId: 'r', wsUrl: `ws://127.0.0.1:${good.port}` } });
    expect(bad.calls).toBe(1);
    expect(hang.calls).toBe(1);
    const servers = (await sb.call('GET', '/servers')).body.servers as Json[];
    expect(Object.fromEntries(servers.map((s) => [s.serverId, s.reserved]))).toEqual({ bad: 0, hang: 0, good: 4 });

    good.setRoomMode('badjson');
    const failed = await sb.call('POST', '/rooms/r2', {});
    expect(failed.status).toBe(502);
    expect(failed.body.error).toBe('room_create_failed');
    expect((failed.body.attempts as Json[]).map((a) => a.serverId).sort()).toEqual(['bad', 'good', 'hang']);
    expect(((await sb.call('GET', '/servers')).body.servers as Json[]).reduce((n, s) => n + Number(s.reserved), 0)).toBe(4);
    expect((await sb.call('GET', '/rooms/r2')).status).toBe(404);
  });

  it('frees consumers on room-closed, only from the server that hosts the room', async () => {
    const sb = await switchboard();
    const a = await sfu();
    await sb.call('POST', '/register', { serverId: 'a', serviceUrl: a.url, workers: 1 });
    await sb.call('POST', '/rooms/r1', { maxPeerCount: 4 });
    expect((await sb.call('GET', '/servers/a')).body.reserved).toBe(24);
    expect(await sb.call('POST', '/room-closed', { serverId: 'other', roomId: 'r1' })).toMatchObject({ status: 409, body: { error: 'wrong_server', field: 'serverId' } });
    expect(await sb.call('POST', '/room-closed', { serverId: 'a', roomId: 'r1' })).toEqual({
      status: 200,
      body: { message: 'Room closed notification processed successfully' },
    });
    expect((await sb.call('GET', '/servers/a')).body.reserved).toBe(0);
    expect(await sb.call('POST', '/room-closed', { serverId: 'a', roomId: 'r1' })).toMatchObject({ status: 404, body: { error: 'not_found' } });
  });

  it('counts heartbeat load as max(reserved, reported) and prefers the requested region', async () => {
    const sb = await switchboard();
    const [eu, us] = [await sfu(), await sfu()];
    await sb.call('POST', '/register', { serverId: 'eu', serviceUrl: eu.url, workers: 1, region: 'eu' });
    await sb.call('POST', '/register', { serverId: 'us', serviceUrl: us.url, workers: 2, region: 'us' });
    expect((await sb.call('POST', '/rooms/r1', { region: 'eu' })).body.wsUrl).toBe(`ws://127.0.0.1:${eu.port}`);
    const hb = await sb.call('POST', '/heartbeat', { serverId: 'us', load: { consumers: 999, cpu: 12.5 } });
    expect(hb).toMatchObject({ status: 200, body: { used: 999, free: 1, reported: { consumers: 999, cpu: 12.5 } } });
    expect((await sb.call('POST', '/rooms/r2', {})).body.wsUrl).toBe(`ws://127.0.0.1:${eu.port}`);
    expect(await sb.call('POST', '/heartbeat', { serverId: 'ghost' })).toMatchObject({ status: 404, body: { error: 'unknown_server' } });
  });

  it('drains a server: no new rooms, existing rooms stay; undrain brings it back', async () => {
    const sb = await switchboard();
    const [a, b] = [await sfu(), await sfu()];
    await sb.call('POST', '/register', { serverId: 'a', serviceUrl: a.url, workers: 2 });
    await sb.call('POST', '/register', { serverId: 'b', serviceUrl: b.url, workers: 1 });
    await sb.call('POST', '/rooms/on-a', {});
    expect((await sb.call('POST', '/servers/a/drain')).body).toMatchObject({ adminState: 'drain', placements: 1 });
    expect((await sb.call('POST', '/rooms/next', {})).body.wsUrl).toBe(`ws://127.0.0.1:${b.port}`);
    expect((await sb.call('POST', '/rooms/on-a', {})).body.wsUrl).toBe(`ws://127.0.0.1:${a.port}`);
    expect((await sb.call('DELETE', '/servers/a/drain')).body).toMatchObject({ adminState: 'active' });
    expect((await sb.call('POST', '/rooms/again', {})).body.wsUrl).toBe(`ws://127.0.0.1:${a.port}`);
    expect((await sb.call('POST', '/servers/nope/drain')).status).toBe(404);
  });

  it('notifies room-lost when a server is deregistered or re-registers, and places the room again', async () => {
    const sink = await startNotifySink();
    try {
      const sb = await switchboard();
      const [a, b] = [await sfu(), await sfu()];
      await sb.call('POST', '/register', { serverId: 'a', serviceUrl: a.url, workers: 2 });
      await sb.call('POST', '/register', { serverId: 'b', serviceUrl: b.url, workers: 1 });
      await sb.call('POST', '/rooms/r1', { eventNotificationUri: `${sink.url}/hook` });
      await sb.call('POST', '/rooms/r2', { eventNotificationUri: `${sink.url}/hook` });
      const deleted = await sb.call('DELETE', '/servers/a');
      expect(deleted).toMatchObject({ status: 200, body: { serverId: 'a' } });
      await sink.waitFor((e) => (e as Json).roomId === 'r1', 3000);
      expect(sink.events).toContainEqual({ event: 'room-lost', roomId: 'r1', serverId: 'a', reason: 'server-deregistered' });
      expect((await sb.call('GET', '/rooms/r1')).status).toBe(404);
      expect((await sb.call('POST', '/rooms/r1', { eventNotificationUri: `${sink.url}/hook` })).body.wsUrl).toBe(`ws://127.0.0.1:${b.port}`);

      await sb.call('POST', '/register', { serverId: 'b', serviceUrl: b.url, workers: 1 });
      await sink.waitFor((e) => (e as Json).reason === 'server-restarted', 3000);
      expect(sink.events).toContainEqual({ event: 'room-lost', roomId: 'r1', serverId: 'b', reason: 'server-restarted' });
      expect((await sb.call('GET', '/servers/b')).body).toMatchObject({ reserved: 0, placements: 0 });
    } finally {
      await sink.stop();
    }
  });

  it('requires the bearer token on every write when AUTH_TOKEN is set', async () => {
    const sb = await switchboard({ AUTH_TOKEN: 'correct-horse-battery' });
    const a = await sfu();
    const reg = { serverId: 'a', serviceUrl: a.url, workers: 1 };
    expect(await sb.call('POST', '/register', reg)).toMatchObject({ status: 401, body: { error: 'unauthorized' } });
    expect((await sb.call('POST', '/register', reg, { authorization: 'Bearer wrong-token-here' })).status).toBe(401);
    expect((await sb.call('GET', '/servers')).body.servers).toEqual([]);
    const auth = { authorization: 'Bearer correct-horse-battery' };
    expect((await sb.call('POST', '/register', reg, auth)).status).toBe(200);
    for (const [method, path, body] of [
      ['POST', '/rooms/r', {}],
      ['POST', '/heartbeat', { serverId: 'a' }],
      ['POST', '/room-closed', { serverId: 'a', roomId: 'r' }],
      ['POST', '/servers/a/drain', undefined],
      ['DELETE', '/servers/a/drain', undefined],
      ['DELETE', '/servers/a', undefined],
    ] as const) {
      expect((await sb.call(method, path, body)).status, `${method} ${path}`).toBe(401);
    }
    expect((await sb.call('POST', '/rooms/r', {}, auth)).status).toBe(200);
    expect((await sb.call('GET', '/rooms/r')).status).toBe(200);
  });

  it('refuses bad input with a 4xx naming the field, and changes nothing', async () => {
    const sb = await switchboard();
    const cases: [string, string, unknown, string][] = [
      ['POST', '/register', { serverId: 'a', serviceUrl: 'ftp://x', workers: 1 }, 'body.serviceUrl'],
      ['POST', '/register', { serverId: 'a', serviceUrl: 'http://x', workers: 0 }, 'body.workers'],
      ['POST', '/register', { serverId: 'a', serviceUrl: 'http://x', workers: '4' }, 'body.workers'],
      ['POST', '/register', { serviceUrl: 'http://x', workers: 1 }, 'body.serverId'],
      ['POST', '/register', { serverId: 'a b', serviceUrl: 'http://x', workers: 1 }, 'body.serverId'],
      ['POST', '/rooms/r', { maxPeerCount: 1 }, 'body.maxPeerCount'],
      ['POST', '/rooms/r', { eventNotificationUri: 'not a url' }, 'body.eventNotificationUri'],
      ['POST', '/room-closed', { serverId: 'a' }, 'body.roomId'],
      ['POST', '/heartbeat', { serverId: 'a', load: { consumers: -1 } }, 'body.load.consumers'],
    ];
    for (const [method, path, body, field] of cases) {
      const res = await sb.call(method, path, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body).toMatchObject({ error: 'bad_request', field });
      expect(typeof res.body.reason).toBe('string');
    }
    const raw = await request(`${sb.url}/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"serverId":' });
    expect(raw.statusCode).toBe(400);
    expect(((await raw.body.json()) as Json).error).toBeTypeOf('string');
    expect((await sb.call('GET', '/servers')).body.servers).toEqual([]);
  });

  it('serves Swagger UI at /API, the OpenAPI document, /healthz and Prometheus metrics', async () => {
    const sb = await switchboard();
    const ui = await request(`${sb.url}/API`, { maxRedirections: 0 } as never);
    expect([200, 302]).toContain(ui.statusCode);
    await ui.body.dump();
    const spec = await sb.call('GET', '/API/json');
    expect(Object.keys(spec.body.paths as Json)).toEqual(expect.arrayContaining(['/register', '/rooms/{roomId}', '/room-closed', '/servers', '/servers/{id}/drain', '/heartbeat']));
    expect(await sb.call('GET', '/healthz')).toMatchObject({ status: 200, body: { status: 'ok', store: 'memory', storeAvailable: true } });
    const a = await sfu();
    await sb.call('POST', '/register', { serverId: 'a', serviceUrl: a.url, workers: 1 });
    await sb.call('POST', '/rooms/m1', {});
    await sb.call('POST', '/rooms/m1', {});
    const metrics = await (await request(`${sb.url}/metrics`)).body.text();
    expect(metrics).toContain('switchboard_servers{pool="rooms",health="healthy",admin="active"} 1');
    expect(metrics).toContain('switchboard_server_capacity_units{pool="rooms",server="a"} 500');
    expect(metrics).toContain('switchboard_server_reserved_units{pool="rooms",server="a"} 4');
    expect(metrics).toContain('switchboard_placements_total{pool="rooms",outcome="created"} 1');
    expect(metrics).toContain('switchboard_placements_total{pool="rooms",outcome="existing"} 1');
    expect(metrics).toContain('switchboard_placements{pool="rooms"} 1');
  });
});

describe('health checks', () => {
  let sb: Awaited<ReturnType<typeof switchboard>>;
  let a: Sfu;
  let b: Sfu;
  const interval = 300;
  const timeout = 200;

  beforeAll(async () => {
    a = await startSfu();
    b = await startSfu();
  });
  afterAll(async () => {
    await a.stop();
    await b.stop();
  });

  it('takes a stopped server out of placement within interval + timeout and brings it back', async () => {
    sb = await switchboard({ HEALTH_CHECK_INTERVAL: String(interval), HEALTH_CHECK_TIMEOUT: String(timeout), ROOM_LOST_AFTER: '600000' });
    await sb.call('POST', '/register', { serverId: 'a', serviceUrl: a.url, workers: 2 });
    await sb.call('POST', '/register', { serverId: 'b', serviceUrl: b.url, workers: 1 });
    await until(async () => (await sb.call('GET', '/servers/a')).body.health !== undefined && ((await sb.call('GET', '/servers/a')).body.health as Json).lastCheck !== null, 2000, 'a first probe');

    await a.stop();
    const tookMs = await until(async () => (await sb.call('GET', '/servers/a')).body.healthy === false, 3000, 'a unhealthy');
    expect(tookMs).toBeLessThanOrEqual(interval + timeout + 250);
    expect((await sb.call('GET', '/servers/a')).body.health).toMatchObject({ status: 'unhealthy' });
    expect((await sb.call('POST', '/rooms/while-down', {})).body.wsUrl).toBe(`ws://127.0.0.1:${b.port}`);

    await a.start();
    await until(async () => (await sb.call('GET', '/servers/a')).body.healthy === true, interval + timeout + 1000, 'a healthy again');
    expect((await sb.call('POST', '/rooms/after', {})).body.wsUrl).toBe(`ws://127.0.0.1:${a.port}`);
  });

  it('a non-200 answer is unhealthy too; the health path is configurable per server', async () => {
    sb = await switchboard({ HEALTH_CHECK_INTERVAL: String(interval), HEALTH_CHECK_TIMEOUT: String(timeout) });
    await sb.call('POST', '/register', { serverId: 'a', serviceUrl: a.url, workers: 1, healthPath: '/rooms/health' });
    a.setHealthy(false);
    try {
      await until(async () => (await sb.call('GET', '/servers/a')).body.healthy === false, 2000, 'a unhealthy on 503');
      expect(((await sb.call('GET', '/servers/a')).body.health as Json).lastError).toBe('HTTP 503');
    } finally {
      a.setHealthy(true);
    }
    await until(async () => (await sb.call('GET', '/servers/a')).body.healthy === true, 2000, 'a healthy');
  });

  it('releases the rooms of a server unhealthy past the grace period and notifies their owners', async () => {
    const sink = await startNotifySink();
    try {
      sb = await switchboard({ HEALTH_CHECK_INTERVAL: String(interval), HEALTH_CHECK_TIMEOUT: String(timeout), ROOM_LOST_AFTER: '500' });
      await sb.call('POST', '/register', { serverId: 'a', serviceUrl: a.url, workers: 1 });
      await sb.call('POST', '/rooms/doomed', { eventNotificationUri: `${sink.url}/events` });
      a.setHealthy(false);
      await sink.waitFor((e) => (e as Json).roomId === 'doomed', 4000);
      expect(sink.events).toContainEqual({ event: 'room-lost', roomId: 'doomed', serverId: 'a', reason: 'server-unhealthy' });
      expect((await sb.call('GET', '/servers/a')).body).toMatchObject({ reserved: 0, placements: 0, healthy: false });
      await sb.call('POST', '/register', { serverId: 'b', serviceUrl: b.url, workers: 1 });
      expect((await sb.call('POST', '/rooms/doomed', {})).body.wsUrl).toBe(`ws://127.0.0.1:${b.port}`);
    } finally {
      a.setHealthy(true);
      await sink.stop();
    }
  });
});
