import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { startSwitchboard, type Switchboard } from '../../src/switchboard.js';
import { startSfu, type Sfu } from '../helpers/sfu.js';
import { SseClient, type Json } from '../helpers/sse.js';

/**
 * The dashboard's server side: the page served with its headers, the event log (`GET /activity`
 * and `activity` events), the charts (`GET /stats/history` and `stats` events), and the buttons
 * (drain, undrain, deregister in any pool, behind the token when one is set).
 */

const env = { APP_PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', HEALTH_CHECK_INTERVAL: '600000' };

async function call(sb: Switchboard, method: string, path: string, opts: { body?: unknown; token?: string } = {}): Promise<{ status: number; body: Json; headers: Headers }> {
  const headers: Record<string, string> = {};
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  const res = await fetch(sb.url + path, { method, headers, redirect: 'manual', ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}) });
  const text = await res.text();
  return { status: res.status, body: (text.startsWith('{') ? JSON.parse(text) : { text }) as Json, headers: res.headers };
}

const clients: SseClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
});

describe('dashboard API, no token', () => {
  let sfus: Sfu[];
  let sb: Switchboard;
  let pageDir: string;
  beforeAll(async () => {
    sfus = await Promise.all([startSfu(), startSfu()]);
    pageDir = mkdtempSync(join(tmpdir(), 'sb-page-'));
    writeFileSync(join(pageDir, 'index.html'), '<!doctype html><title>Switchboard</title>');
    const config = loadConfig({ env });
    sb = await startSwitchboard(config, undefined, { api: { dashboardDir: pageDir, history: { intervalMs: 200 } } });
  });
  afterAll(async () => {
    await sb?.close();
    await Promise.all(sfus.map((s) => s.stop()));
    rmSync(pageDir, { recursive: true, force: true });
  });

  it('serves the page with no-cache, nosniff, no framing and a same-origin CSP; /dashboard redirects', async () => {
    const page = await call(sb, 'GET', '/dashboard/');
    expect(page.status).toBe(200);
    expect(page.body.text).toContain('<title>Switchboard</title>');
    expect(page.headers.get('cache-control')).toBe('no-cache');
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    expect(page.headers.get('content-security-policy')).toContain("default-src 'self'");
    const bare = await call(sb, 'GET', '/dashboard');
    expect(bare.status).toBe(302);
    expect(bare.headers.get('location')).toBe('/dashboard/');
    expect((await call(sb, 'GET', '/dashboard/nope.js')).status).toBe(404);
  });

  it('logs registrations, drains, placements and removals, in GET /activity and live as activity events', async () => {
    const c = await SseClient.open(`${sb.url}/events`);
    clients.push(c);
    await c.next((e) => e.event === 'snapshot', 'snapshot');
    expect((await call(sb, 'POST', '/register', { body: { serverId: 'sfu-a', serviceUrl: sfus[0]!.url, workers: 1, region: 'eu' } })).status).toBe(200);
    const live = await c.next((e) => e.event === 'activity' && e.data.serverId === 'sfu-a', 'activity (registered)');
    expect(live.data).toMatchObject({ pool: 'rooms', kind: 'registered', level: 'info', message: 'sfu-a registered in rooms in eu, capacity 500' });
    expect(live.id).toMatch(/^[0-9a-f]+-\d+$/);

    expect((await call(sb, 'POST', '/rooms/room-1', { body: {} })).status).toBe(200);
    await c.next((e) => e.event === 'activity' && e.data.kind === 'placed', 'activity (placed)');
    const drained = await call(sb, 'POST', '/pools/rooms/servers/sfu-a/drain');
    expect(drained.status).toBe(200);
    expect(drained.body).toMatchObject({ serverId: 'sfu-a', adminState: 'drain', placements: 1 });
    expect((await call(sb, 'GET', '/servers/sfu-a')).body.adminState).toBe('drain');
    expect((await call(sb, 'DELETE', '/pools/rooms/servers/sfu-a/drain')).body.adminState).toBe('active');
    expect((await call(sb, 'DELETE', '/pools/rooms/servers/sfu-a')).status).toBe(200);
    expect((await call(sb, 'GET', '/servers/sfu-a')).status).toBe(404);

    const { body } = await call(sb, 'GET', '/activity');
    const mine = body.entries.filter((e: Json) => e.serverId === 'sfu-a').map((e: Json) => e.message);
    expect(mine).toEqual([
      'sfu-a registered in rooms in eu, capacity 500',
      // The placement says why it went there (core/explain.ts): sfu-a was the only server.
      'room room-1 placed on sfu-a — most-free-capacity: ranked 1st of 1 eligible (of 1), 500 of 500 units free',
      'sfu-a draining',
      'sfu-a back in service (was drain)',
      'room room-1 lost with sfu-a',
      'sfu-a removed from rooms',
    ]);
    expect((await call(sb, 'GET', '/activity?limit=1')).body.entries).toHaveLength(1);
    expect((await call(sb, 'GET', '/activity?limit=0')).status).toBe(400);
  });

  it('drains and removes servers of the other pools through their own services; unknown pool or server: 404, bad pool name: 400', async () => {
    const turn = await call(sb, 'POST', '/turn/register', { body: { serverId: 'turn-1', host: '127.0.0.1', port: 3478 } });
    expect(turn.status, JSON.stringify(turn.body)).toBe(200);
    // A page on another site cannot press the buttons through an operator's browser (CSRF).
    const csrf = await fetch(`${sb.url}/pools/turn/servers/turn-1/drain`, { method: 'POST', headers: { origin: 'https://evil.example' } });
    expect(csrf.status).toBe(403);
    expect(await csrf.json()).toMatchObject({ error: 'cross_origin', field: 'origin' });
    expect((await call(sb, 'GET', '/turn/servers')).body.servers.find((s: Json) => s.serverId === 'turn-1')).toMatchObject({ adminState: 'active' });
    const own = await fetch(`${sb.url}/pools/turn/servers/turn-1/drain`, { method: 'DELETE', headers: { origin: `http://${new URL(sb.url).host}` } });
    expect(own.status).toBe(200);
    expect((await call(sb, 'POST', '/pools/turn/servers/turn-1/drain')).body).toMatchObject({ serverId: 'turn-1', adminState: 'drain' });
    expect((await call(sb, 'GET', '/turn/servers')).body.servers.find((s: Json) => s.serverId === 'turn-1')).toMatchObject({ adminState: 'drain' });
    expect((await call(sb, 'DELETE', '/pools/turn/servers/turn-1')).status).toBe(200);
    expect((await call(sb, 'GET', '/turn/servers')).body.servers.find((s: Json) => s.serverId === 'turn-1')).toBeUndefined();

    const listed = await call(sb, 'GET', '/pools/rooms/servers');
    expect(listed.status).toBe(200);
    expect(listed.body.servers.every((s: Json) => s.kind === 'sfu')).toBe(true);
    expect((await call(sb, 'GET', '/pools/web/servers')).status).toBe(404);

    const unknownPool = await call(sb, 'POST', '/pools/web/servers/x/drain');
    expect(unknownPool.status).toBe(404);
    expect(unknownPool.body).toMatchObject({ error: 'unknown_pool', field: 'pool' });
    expect((await call(sb, 'POST', '/pools/rooms/servers/nobody/drain')).status).toBe(404);
    const bad = await call(sb, 'POST', '/pools/Bad%20Pool/servers/x/drain');
    expect(bad.status).toBe(400);
  });

  it('charts: samples of placements per second and probe latency, in GET /stats/history and live as stats events', async () => {
    expect((await call(sb, 'POST', '/register', { body: { serverId: 'sfu-b', serviceUrl: sfus[1]!.url, workers: 1 } })).status).toBe(200);
    const c = await SseClient.open(`${sb.url}/events?placements=0`);
    clients.push(c);
    for (let i = 0; i < 5; i++) expect((await call(sb, 'POST', `/rooms/chart-${i}`, { body: {} })).status).toBe(200);
    const live = await c.next((e) => e.event === 'stats' && (e.data.placementsPerSecond.rooms ?? 0) > 0, 'stats with placements');
    expect(live.data).toMatchObject({ proxy: null, probeLatencyMs: expect.any(Object) });
    // The history adds up to the rooms placed (these five and room-1 of an earlier test) once the
    // sampler has passed them all: each rate times its sample's own interval (from the timestamps).
    const sampled = async () => {
      const { body } = await call(sb, 'GET', '/stats/history');
      expect(body.intervalSeconds).toBe(0.2);
      const samples = body.samples as Json[];
      let sum = 0;
      for (let i = 1; i < samples.length; i++) sum += (samples[i]!.placementsPerSecond.rooms ?? 0) * ((Date.parse(samples[i]!.at) - Date.parse(samples[i - 1]!.at)) / 1000);
      return sum;
    };
    const deadline = Date.now() + 5_000;
    let total = await sampled();
    while (total < 5.5 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      total = await sampled();
    }
    // Rates are rounded to 0.01/s: a few hundredths either way.
    expect(total).toBeGreaterThan(5.5);
    expect(total).toBeLessThan(6.5);
  });
});

describe('dashboard API with a token', () => {
  let sb: Switchboard;
  beforeAll(async () => {
    sb = await startSwitchboard(loadConfig({ env: { ...env, AUTH_TOKEN: 's3cret-token' } }), undefined, { api: { dashboardDir: '/nonexistent' } });
  });
  afterAll(async () => {
    await sb?.close();
  });

  it('buttons need the bearer token; reads stay open; an unbuilt page says how to build it', async () => {
    const sfu = await startSfu();
    try {
      expect((await call(sb, 'POST', '/register', { body: { serverId: 'sfu-t', serviceUrl: sfu.url, workers: 1 }, token: 's3cret-token' })).status).toBe(200);
      const refused = await call(sb, 'POST', '/pools/rooms/servers/sfu-t/drain');
      expect(refused.status).toBe(401);
      expect((await call(sb, 'POST', '/pools/rooms/servers/sfu-t/drain', { token: 'wrong' })).status).toBe(401);
      expect((await call(sb, 'DELETE', '/pools/rooms/servers/sfu-t', {})).status).toBe(401);
      expect((await call(sb, 'GET', '/servers/sfu-t')).body.adminState).toBe('active');
      expect((await call(sb, 'POST', '/pools/rooms/servers/sfu-t/drain', { token: 's3cret-token' })).body.adminState).toBe('drain');
      expect((await call(sb, 'GET', '/activity')).status).toBe(200);
      expect((await call(sb, 'GET', '/stats/history')).status).toBe(200);
      const page = await call(sb, 'GET', '/dashboard/');
      expect(page.status).toBe(503);
      expect(page.body).toMatchObject({ error: 'dashboard_not_built' });
      expect(page.body.message).toContain('npm run build');
    } finally {
      await sfu.stop();
    }
  });
});
