import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { ORIGINS_POOL } from '../../src/pools/origins/service.js';
import { streamKey } from '../../src/pools/origins/stream-key.js';
import { startSwitchboard, type Switchboard } from '../../src/switchboard.js';
import { until } from '../helpers/http.js';
import { freePort } from '../helpers/ports.js';
import { startSwitchboard as startProcess, type SwitchboardProcess } from '../helpers/process.js';
import { RedisServer } from '../helpers/redis.js';

/**
 * Seed 003's registration (issue 16, item 2): SRS's heartbeat body at POST /api/v1/srs/register,
 * on the API port and on the system API listener (PROXY_SYSTEM_API), idempotent (placements kept),
 * refused bodies changing nothing, AUTH_TOKEN, the SSRF guard, aliveSeconds, and the
 * PROXY_LOAD_BALANCER_TYPE/PROXY_REDIS_* names sharing one registry with REDIS_URL.
 */

/** SRS's proxy documentation's register body (seed 003). */
const seedBody = {
  device_id: 'origin2',
  ip: '127.0.0.1',
  server: 'vid-46p14mm',
  service: 'z2s3w865',
  pid: '42583',
  rtmp: ['19352'],
  http: ['8082'],
  api: ['19853'],
  srt: ['10082'],
  rtc: ['udp://0.0.0.0:8001'],
};
const seedId = 'vid-46p14mm-z2s3w865-42583';
const token = 'origins-token-0123456789';

type Json = Record<string, unknown>;
const started: Switchboard[] = [];
let dir: string;
let redis: RedisServer | undefined;
let proc: SwitchboardProcess | undefined;

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'sb-origins-'));
});
afterAll(async () => {
  await proc?.stop();
  await Promise.all(started.map((sb) => sb.close()));
  await redis?.dispose();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function instance(env: Record<string, string> = {}, yaml = ''): Promise<Switchboard> {
  const file = path.join(dir, `config-${started.length}.yaml`);
  writeFileSync(file, yaml);
  const sb = await startSwitchboard(loadConfig({ file, env: { APP_PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', ...env } }));
  started.push(sb);
  return sb;
}

async function http(base: string, method: string, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: Json }> {
  const res = await fetch(base + url, {
    method,
    headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
  });
  return { status: res.status, body: (await res.json()) as Json };
}

const servers = async (sb: Switchboard) => (await http(sb.url, 'GET', '/origins/servers')).body.servers as Json[];

describe('POST /api/v1/srs/register (memory store)', () => {
  let sb: Switchboard;
  beforeAll(async () => {
    sb = await instance({ PROXY_SYSTEM_API: '0' });
  });

  it("answers SRS's body with {code:0, pid} and lists the origin with its endpoints", async () => {
    const res = await http(sb.url, 'POST', '/api/v1/srs/register', seedBody);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ code: 0, pid: String(process.pid) });
    const list = await servers(sb);
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({
      serverId: seedId,
      kind: 'origin',
      healthy: true,
      labels: { deviceId: 'origin2' },
      endpoints: { host: '127.0.0.1', rtmp: '19352', http: '8082', api: '19853', srt: '10082', rtc: 'udp://0.0.0.0:8001' },
    });
  });

  it('repeated (every ~9 s in SRS): still one server, its placements kept', async () => {
    const reserved = await sb.store.reserve(ORIGINS_POOL, { placementId: '__defaultVhost__/live/livestream', units: 1, policy: 'random', now: Date.now() });
    expect(reserved.outcome).toBe('reserved');
    const before = sb.store.getServer(ORIGINS_POOL, seedId)!;
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 5));
      const res = await http(sb.url, 'POST', '/api/v1/srs/register', seedBody);
      expect(res.body).toEqual({ code: 0, pid: String(process.pid) });
    }
    const after = sb.store.getServer(ORIGINS_POOL, seedId)!;
    expect(after.epoch).toBe(before.epoch);
    expect(after.lastHeartbeat).toBeGreaterThan(before.lastHeartbeat);
    expect(sb.store.getPlacement(ORIGINS_POOL, '__defaultVhost__/live/livestream')?.serverId).toBe(seedId);
    const list = await servers(sb);
    expect(list).toHaveLength(1);
    expect(list[0]!.placements).toBe(1);
  });

  it('refuses every bad body with a 4xx, a non-zero code and the field, and changes nothing', async () => {
    const bad: [unknown, string | undefined][] = [
      ['not json', undefined],
      ['[1,2]', 'body'],
      ['"x"', 'body'],
      ['null', 'body'],
      [{ ...seedBody, ip: '' }, 'body.ip'],
      [{ ...seedBody, ip: undefined }, 'body.ip'],
      [{ ...seedBody, server: '' }, 'body.server'],
      [{ ...seedBody, service: 3 }, 'body.service'],
      [{ ...seedBody, pid: '' }, 'body.pid'],
      [{ ...seedBody, rtmp: [] }, 'body.rtmp'],
      [{ ...seedBody, rtmp: undefined }, 'body.rtmp'],
      [{ ...seedBody, rtmp: ['abc'] }, 'body.rtmp[0]'],
      [{ ...seedBody, rtmp: ['70000'] }, 'body.rtmp[0]'],
      [{ ...seedBody, http: ['0'] }, 'body.http[0]'],
      [{ ...seedBody, api: ['host:'] }, 'body.api[0]'],
      [{ ...seedBody, api: 'x' }, 'body.api'],
      [{ ...seedBody, device_id: '\ud800' }, 'body.device_id'],
      // A bad re-registration of the known server: same identity, a bad port.
      [{ ...seedBody, rtmp: ['19352', '0'] }, 'body.rtmp[1]'],
      [{ ...seedBody, http: ['99999'] }, 'body.http[0]'],
      // The SSRF guard: the cloud metadata address.
      [{ ...seedBody, ip: '169.254.169.254' }, 'body.ip'],
      [{ ...seedBody, api: ['169.254.169.254:80'] }, 'body.api[0]'],
    ];
    const state = () => JSON.stringify({ servers: sb.store.listServers(ORIGINS_POOL), placements: sb.store.listPlacements(ORIGINS_POOL) });
    const before = state();
    const listed = JSON.stringify(await servers(sb));
    for (const [body, field] of bad) {
      const res = await http(sb.url, 'POST', '/api/v1/srs/register', body);
      expect(res.status, JSON.stringify(body)).toBeGreaterThanOrEqual(400);
      expect(res.status, JSON.stringify(body)).toBeLessThan(500);
      expect(res.body.code, JSON.stringify(res.body)).toBe(res.status);
      expect(typeof res.body.message).toBe('string');
      if (field) expect(res.body.field, JSON.stringify(res.body)).toBe(field);
      if (field) expect(res.body.message).toContain(field);
    }
    const ssrf = await http(sb.url, 'POST', '/api/v1/srs/register', { ...seedBody, ip: '169.254.169.254' });
    expect(ssrf.body.error).toBe('forbidden_destination');
    expect(state()).toBe(before);
    expect(JSON.stringify(await servers(sb))).toBe(listed);
  });

  it('the system API listener (PROXY_SYSTEM_API) answers the same route, and only it', async () => {
    expect(sb.systemApi).toBeDefined();
    const res = await http(sb.systemApi!.url, 'POST', '/api/v1/srs/register', { ...seedBody, pid: '7' });
    expect(res).toEqual({ status: 200, body: { code: 0, pid: String(process.pid) } });
    const bad = await http(sb.systemApi!.url, 'POST', '/api/v1/srs/register', { ...seedBody, rtmp: [] });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ code: 400, error: 'bad_request', field: 'body.rtmp' });
    expect((await http(sb.systemApi!.url, 'GET', '/origins/servers')).status).toBe(404);
    expect((await servers(sb)).map((s) => s.serverId)).toEqual([seedId, 'vid-46p14mm-z2s3w865-7']);
  });

  it('changed endpoints register anew (new epoch), releasing its placements', async () => {
    const res = await http(sb.url, 'POST', '/api/v1/srs/register', { ...seedBody, rtmp: ['19353'] });
    expect(res.status).toBe(200);
    expect(sb.store.getPlacement(ORIGINS_POOL, '__defaultVhost__/live/livestream')).toBeUndefined();
    expect(sb.store.getServer(ORIGINS_POOL, seedId)?.endpoints.rtmp).toBe('19353');
  });

  it('generic API: register, heartbeat, list, delete', async () => {
    const reg = await http(sb.url, 'POST', '/origins/register', { serverId: 'nginx-1', host: '127.0.0.1', rtmp: [1935], http: ['8080'], region: 'eu', capacity: 50 });
    expect(reg.status).toBe(200);
    expect(reg.body).toMatchObject({ serverId: 'nginx-1', kind: 'origin', capacity: 50, region: 'eu', endpoints: { host: '127.0.0.1', rtmp: '1935', http: '8080' } });
    const hb = await http(sb.url, 'POST', '/origins/heartbeat', { serverId: 'nginx-1', load: { streams: 3 } });
    expect(hb.status).toBe(200);
    expect(hb.body.reported).toEqual({ streams: 3 });
    const unknown = await http(sb.url, 'POST', '/origins/heartbeat', { serverId: 'nope' });
    expect(unknown.status).toBe(404);
    const badPort = await http(sb.url, 'POST', '/origins/register', { serverId: 'nginx-2', host: '127.0.0.1', rtmp: ['x:1:2'] });
    expect(badPort.status).toBe(400);
    expect(badPort.body.field).toBe('body.rtmp[0]');
    expect((await http(sb.url, 'DELETE', '/origins/servers/nginx-1')).status).toBe(200);
    expect((await http(sb.url, 'DELETE', '/origins/servers/nginx-1')).status).toBe(404);
  });
});

describe('GET /origins/streams: which origin holds each stream (srs#4646)', () => {
  let sb: Switchboard;
  beforeAll(async () => {
    sb = await instance();
    for (const [id, port] of [['o-1', 19401], ['o-2', 19402]] as const) {
      const res = await http(sb.url, 'POST', '/origins/register', { serverId: id, host: '127.0.0.1', listen: { rtmp: [port], http: [port + 100] } });
      expect(res.status).toBe(200);
    }
  });
  afterAll(async () => {
    await sb?.close();
  });

  it('lists every mapped stream in key order with its origin and why; one origin; one stream by its key; bad input', async () => {
    const keys = Array.from({ length: 12 }, (_, i) => streamKey(undefined, 'live', `cam${String(i).padStart(2, '0')}`));
    const mapped = new Map<string, string>();
    for (const key of keys) mapped.set(key, (await sb.streams.locate(key, 'publish')).id);
    expect(new Set(mapped.values()).size).toBe(2); // twelve random picks over two origins

    const all = await http(sb.url, 'GET', '/origins/streams');
    expect(all.status).toBe(200);
    expect(all.body.total).toBe(12);
    const listed = all.body.streams as Json[];
    expect(listed.map((s) => s.stream)).toEqual([...keys].sort());
    for (const s of listed) {
      expect(s).toMatchObject({ origin: mapped.get(s.stream as string), state: 'ready' });
      expect(s.why).toMatchObject({ policy: 'random', servers: 2, eligible: 2 });
      expect(s.whyText).toMatch(/^random: ranked (1st|2nd) of 2 eligible \(of 2\)$/);
    }

    const one = await http(sb.url, 'GET', '/origins/streams?origin=o-2&limit=3');
    expect(one.status, JSON.stringify(one.body)).toBe(200);
    const onO2 = [...mapped.values()].filter((o) => o === 'o-2').length;
    expect(one.body.total).toBe(onO2);
    expect(one.body.streams as Json[]).toHaveLength(Math.min(3, onO2));
    expect((one.body.streams as Json[]).every((s) => s.origin === 'o-2')).toBe(true);

    const key = keys[3]!;
    const single = await http(sb.url, 'GET', `/origins/streams/${key}`);
    expect(single.status).toBe(200);
    expect(single.body).toMatchObject({ stream: key, origin: mapped.get(key), state: 'ready' });

    const missing = await http(sb.url, 'GET', '/origins/streams/__defaultVhost__/live/nobody');
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ error: 'not_found', field: 'stream' });
    const unknown = await http(sb.url, 'GET', '/origins/streams?origin=o-9');
    expect(unknown.status).toBe(404);
    expect(unknown.body).toMatchObject({ error: 'unknown_server', field: 'origin' });
    for (const q of ['limit=0', 'limit=10001', 'limit=x', 'origin=a%20b']) {
      const bad = await http(sb.url, 'GET', `/origins/streams?${q}`);
      expect(bad.status, q).toBe(400);
      expect(bad.body.field, q).toBeDefined();
    }

    // An unpublish removes it from the list.
    await sb.streams.forget(key);
    expect((await http(sb.url, 'GET', `/origins/streams/${key}`)).status).toBe(404);
    expect((await http(sb.url, 'GET', '/origins/streams')).body.total).toBe(11);
  });
});

describe('AUTH_TOKEN', () => {
  it('registration needs the bearer token, on the API port and the system API', async () => {
    const sb = await instance({ AUTH_TOKEN: token, PROXY_SYSTEM_API: '0' });
    for (const base of [sb.url, sb.systemApi!.url]) {
      const without = await http(base, 'POST', '/api/v1/srs/register', seedBody);
      expect(without.status).toBe(401);
      expect(without.body).toMatchObject({ code: 401, error: 'unauthorized' });
      const wrong = await http(base, 'POST', '/api/v1/srs/register', seedBody, { authorization: 'Bearer nope-nope-nope' });
      expect(wrong.status).toBe(401);
      expect(await servers(sb)).toEqual([]);
    }
    for (const base of [sb.url, sb.systemApi!.url]) {
      const ok = await http(base, 'POST', '/api/v1/srs/register', seedBody, { authorization: `Bearer ${token}` });
      expect(ok).toEqual({ status: 200, body: { code: 0, pid: String(process.pid) } });
    }
    expect((await http(sb.url, 'POST', '/origins/register', { serverId: 'o', host: '127.0.0.1' })).status).toBe(401);
    expect((await http(sb.url, 'DELETE', `/origins/servers/${seedId}`)).status).toBe(401);
    expect(await servers(sb)).toHaveLength(1);
  });
});

describe('aliveSeconds', () => {
  it('an origin not heard from within aliveSeconds turns unhealthy; registering again makes it healthy', async () => {
    const sb = await instance({}, 'origins:\n  aliveSeconds: 1\n');
    expect((await http(sb.url, 'POST', '/api/v1/srs/register', seedBody)).status).toBe(200);
    expect((await servers(sb))[0]!.healthy).toBe(true);
    await until(async () => (await servers(sb))[0]!.healthy === false, 5_000, 'the silent origin to turn unhealthy');
    expect(((await servers(sb))[0]!.health as Json).lastError).toMatch(/not registered for/);
    expect((await http(sb.url, 'POST', '/api/v1/srs/register', seedBody)).status).toBe(200);
    expect((await servers(sb))[0]!.healthy).toBe(true);
  });
});

describe('PROXY_LOAD_BALANCER_TYPE=redis + PROXY_REDIS_* and REDIS_URL', () => {
  it('share one registry', async () => {
    redis = await RedisServer.start();
    const a = await instance({ PROXY_LOAD_BALANCER_TYPE: 'redis', PROXY_REDIS_HOST: '127.0.0.1', PROXY_REDIS_PORT: String(redis.port) });
    const b = await instance({ REDIS_URL: redis.url });
    expect(a.store.kind).toBe('redis');
    expect((await http(a.url, 'POST', '/api/v1/srs/register', seedBody)).status).toBe(200);
    await until(async () => (await servers(b)).some((s) => s.serverId === seedId), 5_000, 'the registration on the other instance');
    const reserved = await b.store.reserve(ORIGINS_POOL, { placementId: 'live/s1', units: 1, policy: 'random', now: Date.now() });
    expect(reserved.outcome).toBe('reserved');
    // SRS's next heartbeat lands on the other instance: same server, the stream stays.
    expect((await http(a.url, 'POST', '/api/v1/srs/register', seedBody)).status).toBe(200);
    await until(async () => a.store.getPlacement(ORIGINS_POOL, 'live/s1') !== undefined, 5_000, 'the placement on the first instance');
    expect(b.store.getPlacement(ORIGINS_POOL, 'live/s1')?.serverId).toBe(seedId);
    expect(await servers(a)).toHaveLength(1);
    expect(await servers(b)).toHaveLength(1);
  });
});

describe('npm start with PROXY_SYSTEM_API', () => {
  it('a spawned Switchboard answers SRS registration on the system API port', async () => {
    const systemPort = await freePort();
    proc = await startProcess({ env: { PROXY_SYSTEM_API: String(systemPort), HOST: '127.0.0.1' } });
    let res: { status: number; body: Json } | undefined;
    await until(
      async () => {
        res = await http(`http://127.0.0.1:${systemPort}`, 'POST', '/api/v1/srs/register', seedBody).catch(() => undefined);
        return res !== undefined;
      },
      5_000,
      'the system API',
    );
    expect(res).toEqual({ status: 200, body: { code: 0, pid: String(proc.pid) } });
    const list = (await http(proc.url, 'GET', '/origins/servers')).body.servers as Json[];
    expect(list.map((s) => s.serverId)).toEqual([seedId]);
  });
});
