import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { MEDIA_BACKEND } from '../../src/haproxy/config.js';
import type { ServerState } from '../../src/haproxy/runtime.js';
import { startSwitchboard, type Switchboard } from '../../src/switchboard.js';
import { startWeb, startWsMedia, wsConnect, type Identity, type WsMedia } from '../helpers/haproxy-mode.js';
import { freePort } from '../helpers/ports.js';

/**
 * HAProxy mode against a real HAProxy 2.6: Switchboard in-process starts it from the rendered
 * configuration and keeps it in step through the Runtime API; stand-in media servers accept real
 * WebSocket upgrades through HAProxy's frontend and say who they are.
 */
const dir = mkdtempSync(join(tmpdir(), 'sb-haproxy-it-'));
let sb: Switchboard;
let frontendPort: number;
let web: Awaited<ReturnType<typeof startWeb>>;
const media: Record<string, WsMedia> = {};

async function call(method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await request(sb.url + path, {
    method: method as 'GET',
    ...(body !== undefined ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {}),
  });
  const text = await res.body.text();
  return { status: res.statusCode, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

async function until<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** HAProxy's view of a registered server's slot. */
async function slotState(serverId: string): Promise<ServerState | undefined> {
  const slot = sb.haproxy!.sync.slotOf(serverId);
  if (!slot) return undefined;
  return (await sb.haproxy!.api.showServersState(MEDIA_BACKEND)).find((s) => s.name === slot);
}

async function ws(path: string): Promise<Identity> {
  const r = await wsConnect(frontendPort, path);
  if (!('identity' in r)) throw new Error(`WebSocket ${path}: HTTP ${r.status} ${r.body}`);
  expect(r.acceptOk).toBe(true);
  return r.identity;
}

async function register(name: string, weight: number): Promise<void> {
  const m = media[name]!;
  expect((await call('POST', '/register', { serverId: name, serviceUrl: m.url, wsUrl: m.wsUrl, workers: 1, weight })).status).toBe(200);
}

beforeAll(async () => {
  for (const name of ['a', 'b', 'c']) media[name] = await startWsMedia(name);
  web = await startWeb();
  frontendPort = await freePort();
  const file = join(dir, 'switchboard.yaml');
  writeFileSync(
    file,
    JSON.stringify({
      server: { host: '127.0.0.1', port: 0 },
      logLevel: 'silent',
      health: { intervalMs: 200, timeoutMs: 150 },
      haproxy: {
        enabled: true,
        runDir: join(dir, 'run'),
        frontend: { host: '127.0.0.1', port: frontendPort },
        web: { servers: [{ host: '127.0.0.1', port: web.port }] },
        media: { slots: 4, checkIntervalMs: 200 },
        sync: { debounceMs: 20, reconcileMs: 1_000 },
      },
    }),
  );
  sb = await startSwitchboard(loadConfig({ file, env: {} }));
  await register('a', 100);
  await register('b', 50);
  await until('both servers up in HAProxy', async () => (await slotState('a'))?.up && (await slotState('b'))?.up);
});

afterAll(async () => {
  await sb?.close();
  await Promise.all(Object.values(media).map((m) => m.stop()));
  await web?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('HAProxy mode', () => {
  it('starts HAProxy from the rendered configuration; servers fill slots with their address and weight', async () => {
    expect(sb.haproxy?.process?.pid).toBeGreaterThan(0);
    const a = (await slotState('a'))!;
    const b = (await slotState('b'))!;
    expect([a.addr, a.port, a.weight, a.state]).toEqual(['127.0.0.1', media.a!.port, 100, 'ready']);
    expect([b.addr, b.port, b.weight, b.state]).toEqual(['127.0.0.1', media.b!.port, 50, 'ready']);
    // Unused slots stay in maintenance.
    const all = await sb.haproxy!.api.showServersState(MEDIA_BACKEND);
    expect(all.filter((s) => s.state === 'maint')).toHaveLength(2);
  });

  it('weights and drain set through the API show in `show servers state`', async () => {
    await register('b', 20);
    await until('weight 20', async () => (await slotState('b'))?.weight === 20);
    expect((await call('POST', '/servers/b/drain')).status).toBe(200);
    await until('b draining', async () => (await slotState('b'))?.state === 'drain');
    expect((await call('DELETE', '/servers/b/drain')).status).toBe(200);
    await until('b ready', async () => (await slotState('b'))?.state === 'ready');
    await register('b', 50);
    await until('weight 50', async () => (await slotState('b'))?.weight === 50);
  });

  it('a plain GET goes to the web backend; WebSockets carry X-Client-IP', async () => {
    const res = await request(`http://127.0.0.1:${frontendPort}/index.html`);
    expect(res.statusCode).toBe(200);
    expect(await res.body.json()).toMatchObject({ server: 'web', url: '/index.html' });
    const id = await ws('/ws');
    expect(['a', 'b']).toContain(id.server);
    expect(id.clientIp).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it('a WebSocket without a room goes by the balance algorithm (roundrobin by weight)', async () => {
    const seen: Record<string, number> = {};
    for (let i = 0; i < 30; i++) {
      const id = await ws('/ws?peerId=p');
      seen[id.server] = (seen[id.server] ?? 0) + 1;
    }
    // weights 100 : 50
    expect(seen).toEqual({ a: 20, b: 10 });
  });

  it('a room placed through the API: its WebSockets reach its server, every time', async () => {
    const rooms = ['room-1', 'room-2', 'room-3', 'room-4'];
    for (const roomId of rooms) {
      const placed = await call('POST', `/rooms/${roomId}`, {});
      expect(placed.status).toBe(200);
      const serverId = sb.store.getPlacement('rooms', roomId)!.serverId;
      expect(placed.body.wsUrl).toBe(media[serverId]!.wsUrl);
      // Straight away, as a client would connect with the answer.
      for (let i = 0; i < 5; i++) expect((await ws(`/ws?roomId=${roomId}&peerId=p${i}`)).server).toBe(serverId);
    }
    const servers = new Set(rooms.map((r) => sb.store.getPlacement('rooms', r)!.serverId));
    expect(servers.size).toBe(2);
    // url-encoded room ids match too.
    expect((await ws('/ws?roomId=room%2D1')).server).toBe(sb.store.getPlacement('rooms', 'room-1')!.serverId);
  });

  it("a draining server keeps its rooms' WebSockets and gets no new ones", async () => {
    const roomId = 'drain-room';
    await call('POST', `/rooms/${roomId}`, {});
    const owner = sb.store.getPlacement('rooms', roomId)!.serverId;
    const other = owner === 'a' ? 'b' : 'a';
    expect((await call('POST', `/servers/${owner}/drain`)).status).toBe(200);
    await until('drain', async () => (await slotState(owner))?.state === 'drain');
    for (let i = 0; i < 5; i++) expect((await ws(`/ws?roomId=${roomId}`)).server).toBe(owner);
    for (let i = 0; i < 6; i++) expect((await ws('/ws')).server).toBe(other);
    // A room closed by its media server leaves the map.
    expect((await call('POST', '/room-closed', { serverId: owner, roomId })).status).toBe(200);
    await until('map entry gone', async () => !(await sb.haproxy!.api.showMap(join(dir, 'run', 'switchboard-rooms.map'))).some((e) => e.key === roomId));
    expect((await ws(`/ws?roomId=${roomId}`)).server).toBe(other);
    expect((await call('DELETE', `/servers/${owner}/drain`)).status).toBe(200);
    await until('ready', async () => (await slotState(owner))?.state === 'ready');
  });

  it('a server that turns unhealthy is out of HAProxy, and back when healthy', async () => {
    media.a!.setHealthy(false);
    await until('a in maintenance', async () => (await slotState('a'))?.state === 'maint');
    for (let i = 0; i < 6; i++) expect((await ws('/ws')).server).toBe('b');
    media.a!.setHealthy(true);
    await until('a back', async () => (await slotState('a'))?.up);
  });

  it('a third server takes a free slot; deregistered, its slot goes back to maintenance', async () => {
    await register('c', 100);
    await until('c up', async () => (await slotState('c'))?.up);
    const slot = sb.haproxy!.sync.slotOf('c')!;
    expect((await call('DELETE', '/servers/c')).status).toBe(200);
    await until('slot freed', async () => (await sb.haproxy!.api.showServersState(MEDIA_BACKEND)).find((s) => s.name === slot)?.state === 'maint');
    expect(sb.haproxy!.sync.slotOf('c')).toBeUndefined();
  });

  it('HAProxy killed: restarted, slots and room map written again', async () => {
    const roomId = 'after-restart';
    await call('POST', `/rooms/${roomId}`, {});
    const owner = sb.store.getPlacement('rooms', roomId)!.serverId;
    const pid = sb.haproxy!.process!.pid!;
    process.kill(pid, 'SIGKILL');
    await until('a new HAProxy', () => sb.haproxy!.process!.restarts === 1 && sb.haproxy!.process!.pid !== pid, 15_000);
    await until('servers up again', async () => (await slotState('a'))?.up && (await slotState('b'))?.up, 15_000);
    await until('room mapped again', async () => (await sb.haproxy!.api.showMap(join(dir, 'run', 'switchboard-rooms.map'))).some((e) => e.key === roomId));
    for (let i = 0; i < 5; i++) expect((await ws(`/ws?roomId=${roomId}`)).server).toBe(owner);
  });
});
