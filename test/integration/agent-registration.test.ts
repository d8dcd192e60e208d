import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startRegistration } from '../../src/agent/registration.js';
import type { AgentState, LoadSnapshot, LoadSource } from '../../src/agent/types.js';
import { until } from '../helpers/http.js';
import { freePort } from '../helpers/ports.js';
import { startSwitchboard, type SwitchboardProcess } from '../helpers/process.js';
import { startSfu, type Sfu } from '../helpers/sfu.js';

/**
 * The agent's self-registration against a real Switchboard (`switchboard serve`, memory store, a
 * token): registers, heartbeats move the reported load, drain waits for the rooms to end before
 * deregistering, and a Switchboard restarted with an empty store gets the server back.
 */
const TOKEN = 'agent-registration-token';
let port: number;
let sb: SwitchboardProcess;
let sfu: Sfu;
const stops: (() => Promise<void>)[] = [];

const start = () => startSwitchboard({ env: { APP_PORT: String(port), AUTH_TOKEN: TOKEN, HEALTH_CHECK_INTERVAL: '500' } });

async function api(method: string, path: string, body?: unknown) {
  const res = await fetch(sb.url + path, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** The agent's load: a plain LoadSource whose readings the test sets. */
function source(load: LoadSnapshot = {}): LoadSource & { load: LoadSnapshot } {
  const s = { load, state: (): AgentState => ({ load: s.load, failing: [], admin: 'ready' }) };
  return s;
}

function capture() {
  const lines: { level: number; msg: string; [k: string]: unknown }[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { logger, lines, messages: (re: RegExp) => lines.filter((l) => re.test(l.msg)) };
}

beforeAll(async () => {
  port = await freePort();
  sfu = await startSfu();
  sb = await start();
}, 60_000);

afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
  // Each test starts from an empty registry (rooms must land on the test's own server).
  for (const s of (await api('GET', '/servers')).body.servers as { serverId: string }[]) await api('DELETE', `/servers/${s.serverId}`);
});

afterAll(async () => {
  await sb?.stop();
  await sfu?.stop();
});

describe('agent self-registration', () => {
  it('registers, heartbeats move the reported load, and re-registers after Switchboard restarts empty', async () => {
    const load = source({ consumers: 10, cpu: 20 });
    const log = capture();
    const reg = startRegistration(
      { url: sb.url, token: TOKEN, pool: 'rooms', serverId: 'agent-sfu', serviceUrl: sfu.url, workers: 2, region: 'eu', labels: { via: 'agent' }, heartbeatIntervalMs: 200 },
      load,
      log.logger,
    );
    stops.push(() => reg.stop());

    await until(async () => (await api('GET', '/servers/agent-sfu')).status === 200, 5000, 'registration');
    const view = (await api('GET', '/servers/agent-sfu')).body;
    expect(view).toMatchObject({ capacity: 1000, region: 'eu', labels: { via: 'agent' }, adminState: 'active' });
    await until(async () => ((await api('GET', '/servers/agent-sfu')).body.reported as LoadSnapshot)?.consumers === 10, 5000, 'first heartbeat');

    load.load = { consumers: 321, cpu: 55 };
    await until(async () => ((await api('GET', '/servers/agent-sfu')).body.reported as LoadSnapshot)?.consumers === 321, 5000, 'load to move');
    const moved = (await api('GET', '/servers/agent-sfu')).body;
    expect(moved.reported).toEqual({ consumers: 321, cpu: 55 });
    expect(moved.used).toBe(321);

    // Switchboard goes away for a while (many heartbeat periods), then comes back with an empty store.
    await sb.stop();
    await new Promise((r) => setTimeout(r, 1500));
    expect(log.messages(/unreachable/)).toHaveLength(1);
    sb = await start();
    await until(async () => (await api('GET', '/servers/agent-sfu')).status === 200, 10_000, 're-registration after the restart');
    await until(async () => ((await api('GET', '/servers/agent-sfu')).body.reported as LoadSnapshot)?.consumers === 321, 5000, 'heartbeats after the restart');
    expect(log.messages(/unreachable/)).toHaveLength(1);
    expect(log.messages(/reachable again/)).toHaveLength(1);
    expect(log.messages(/registering again/).length).toBeGreaterThanOrEqual(1);

    // No rooms: drain() deregisters at once.
    await reg.drain();
    expect((await api('GET', '/servers/agent-sfu')).status).toBe(404);
  }, 40_000);

  it('drain(): drains, waits for the rooms to close, then deregisters and stops heartbeating', async () => {
    const load = source({ consumers: 0 });
    const reg = startRegistration(
      { url: sb.url, token: TOKEN, pool: 'rooms', serverId: 'agent-drain', serviceUrl: sfu.url, workers: 1, heartbeatIntervalMs: 200, drainTimeoutMs: 20_000 },
      load,
    );
    stops.push(() => reg.stop());
    await until(async () => (await api('GET', '/servers/agent-drain')).status === 200, 5000, 'registration');
    const room = await api('POST', '/rooms/drain-room', {});
    expect(room.status, JSON.stringify(room.body)).toBe(200);
    expect((await api('GET', '/rooms/drain-room')).body.serverId).toBe('agent-drain');

    let drainedAt = 0;
    const draining = reg.drain().then(() => (drainedAt = Date.now()));
    await until(async () => (await api('GET', '/servers/agent-drain')).body.adminState === 'drain', 5000, 'adminState drain');
    // The room is still open: the server stays registered (and drained) for as long.
    await new Promise((r) => setTimeout(r, 1000));
    const during = await api('GET', '/servers/agent-drain');
    expect(during.status).toBe(200);
    expect(during.body).toMatchObject({ adminState: 'drain', placements: 1 });
    expect(drainedAt).toBe(0);

    const closedAt = Date.now();
    expect((await api('POST', '/room-closed', { serverId: 'agent-drain', roomId: 'drain-room' })).status).toBe(200);
    await draining;
    expect(drainedAt).toBeGreaterThanOrEqual(closedAt);
    expect((await api('GET', '/servers/agent-drain')).status).toBe(404);
    // Heartbeats have stopped: nothing registers it again.
    await new Promise((r) => setTimeout(r, 800));
    expect((await api('GET', '/servers/agent-drain')).status).toBe(404);
  }, 40_000);

  it('drain() deregisters at the drain deadline when rooms stay open', async () => {
    const reg = startRegistration(
      { url: sb.url, token: TOKEN, pool: 'rooms', serverId: 'agent-deadline', serviceUrl: sfu.url, workers: 1, heartbeatIntervalMs: 200, drainTimeoutMs: 800 },
      source(),
    );
    stops.push(() => reg.stop());
    await until(async () => (await api('GET', '/servers/agent-deadline')).status === 200, 5000, 'registration');
    expect((await api('POST', '/rooms/stuck-room', {})).status).toBe(200);
    const started = Date.now();
    await reg.drain();
    expect(Date.now() - started).toBeGreaterThanOrEqual(700);
    expect((await api('GET', '/servers/agent-deadline')).status).toBe(404);
  });

  it('TURN pool: registers, heartbeats allocations, drain deregisters', async () => {
    const load = source({ allocations: 4 });
    const turnPort = await freePort();
    const reg = startRegistration(
      { url: sb.url, token: TOKEN, pool: 'turn', serverId: 'agent-turn', turn: { host: '127.0.0.1', port: turnPort }, region: 'eu', heartbeatIntervalMs: 200, drainTimeoutMs: 5000 },
      load,
    );
    stops.push(() => reg.stop());
    const find = async () => ((await api('GET', '/turn/servers')).body.servers as { serverId: string; reported: LoadSnapshot }[]).find((s) => s.serverId === 'agent-turn');
    await until(async () => (await find())?.reported.allocations === 4, 5000, 'TURN registration and heartbeat');
    load.load = { allocations: 9 };
    await until(async () => (await find())?.reported.allocations === 9, 5000, 'allocations to move');
    // Allocations end a moment after drain starts: drain() deregisters at once and waits for them.
    setTimeout(() => (load.load = { allocations: 0 }), 500);
    const started = Date.now();
    await reg.drain();
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
    expect(await find()).toBeUndefined();
  });

  it('the token is needed: without it the agent is refused (and says so once)', async () => {
    const log = capture();
    const reg = startRegistration({ url: sb.url, pool: 'rooms', serverId: 'agent-no-token', serviceUrl: sfu.url, heartbeatIntervalMs: 100 }, source(), log.logger);
    stops.push(() => reg.stop());
    await new Promise((r) => setTimeout(r, 800));
    expect((await api('GET', '/servers/agent-no-token')).status).toBe(404);
    const refused = log.messages(/refused/);
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({ status: 401, code: 'unauthorized', field: 'headers.authorization' });
  });
});
