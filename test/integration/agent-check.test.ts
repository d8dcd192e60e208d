import { createServer, type Server as NetServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import type { StoreEvent } from '../../src/store/store.js';
import { startSwitchboard, type Switchboard } from '../../src/switchboard.js';
import { RedisServer } from '../helpers/redis.js';
import { startSfu, type Sfu } from '../helpers/sfu.js';

/**
 * The agent-check client against real agent-check speakers: each stand-in SFU has a TCP port that
 * answers one line and closes, as the seed's haproxy-agent-check.sh does under xinetd. Switchboard
 * polls it every probe round and applies the reply to health, admin state, weight and maxconn.
 * On both stores.
 */

const INTERVAL = 200;

/** An HAProxy agent-check speaker: writes `reply` and a newline, then closes. */
interface Agent {
  port: number;
  reply: string;
  /** Connections answered. */
  polls: number;
  /** What the last connection sent before the reply went out (agent-send). */
  received: string;
  stop(): Promise<void>;
}

async function startAgent(reply = 'up'): Promise<Agent> {
  const agent = { reply, polls: 0, received: '' } as Agent;
  const server: NetServer = createServer((socket) => {
    agent.polls++;
    socket.on('error', () => {});
    socket.once('data', (d) => (agent.received = d.toString()));
    // Like xinetd's script: answer at once, whatever was sent, and close.
    socket.end(`${agent.reply}\n`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  agent.port = (server.address() as { port: number }).port;
  agent.stop = () => new Promise((r) => server.close(() => r()));
  return agent;
}

async function until<T>(what: string, probe: () => T | Promise<T>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let redis: RedisServer;
beforeAll(async () => {
  redis = await RedisServer.start();
});
afterAll(async () => {
  await redis?.dispose();
});

describe.each(['memory', 'redis'] as const)('agent-check client (%s store)', (kind) => {
  let sb: Switchboard;
  let sfuA: Sfu;
  let sfuB: Sfu;
  let agentA: Agent;
  let agentB: Agent;

  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${sb.url}${path}`, {
      method,
      ...(body !== undefined ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const view = async (id: string) => (await api('GET', `/servers/${id}`)).body as { healthy: boolean; weight: number; adminState: string; capacity: number; health: { lastError?: string }; attributes: Record<string, unknown> };
  const rounds = (n: number) => sleep(INTERVAL * n + 100);

  beforeAll(async () => {
    const env: Record<string, string> = { APP_PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', HEALTH_CHECK_INTERVAL: String(INTERVAL), ROOM_LOST_AFTER: '300' };
    if (kind === 'redis') Object.assign(env, { REDIS_URL: redis.url, REDIS_PREFIX: `agent${Date.now()}` });
    const config = loadConfig({ env });
    config.turn.healthCheck.intervalSeconds = INTERVAL / 1000;
    sb = await startSwitchboard(config);
    [sfuA, sfuB, agentA, agentB] = await Promise.all([startSfu(), startSfu(), startAgent(), startAgent()]);
  });
  afterAll(async () => {
    await sb?.close();
    await Promise.all([sfuA?.stop(), sfuB?.stop(), agentA?.stop(), agentB?.stop()]);
  });

  // Each test starts from both servers freshly registered (their rooms released) with agents answering `up`.
  const register = async (extra: Record<string, unknown> = {}) => {
    agentA.reply = 'up';
    agentB.reply = 'up';
    for (const [id, sfu, agent] of [['a', sfuA, agentA], ['b', sfuB, agentB]] as const) {
      const r = await api('POST', '/register', { serverId: id, serviceUrl: sfu.url, workers: 1, capacity: 100, agentPort: agent.port, ...extra });
      expect(r.status).toBe(200);
    }
  };

  it('registers agentPort and polls it every round', async () => {
    await register({ weight: 20, agentSend: 'wcs/a' });
    expect((await view('a')).attributes).toMatchObject({ agentPort: agentA.port, agentSend: 'wcs/a', configuredWeight: 20, configuredCapacity: 100 });
    const before = agentA.polls;
    await rounds(3);
    expect(agentA.polls - before).toBeGreaterThanOrEqual(2);
    expect(agentA.received).toBe('wcs/a');
  });

  it('refuses a bad agentPort', async () => {
    for (const agentPort of [0, 65536, 'x', 1.5]) {
      expect((await api('POST', '/register', { serverId: 'bad', serviceUrl: sfuA.url, workers: 1, agentPort })).status).toBe(400);
    }
    expect((await api('POST', '/register', { serverId: 'bad', serviceUrl: sfuA.url, workers: 1, agentPort: 9707, agentHost: '169.254.169.254' })).body).toMatchObject({ error: 'forbidden_destination' });
  });

  it('down takes the server out of placement, with the description as lastError; up brings it back', async () => {
    await register();
    // A room on a before: the agent's down keeps new rooms away, but a answers its health probe,
    // so its rooms are not lost (HAProxy too keeps a server's sessions when its agent says down).
    await api('POST', '/servers/b/drain');
    expect((await api('POST', '/rooms/kept')).status).toBe(200);
    await api('DELETE', '/servers/b/drain');
    expect(sb.store.getPlacement('rooms', 'kept')?.serverId).toBe('a');
    agentA.reply = 'down#overloaded';
    await until('a unhealthy', async () => !(await view('a')).healthy);
    expect((await view('a')).health.lastError).toBe('agent: down (overloaded)');
    await rounds(3); // past ROOM_LOST_AFTER
    expect(sb.store.getPlacement('rooms', 'kept')?.serverId).toBe('a');
    for (let i = 0; i < 6; i++) {
      const r = await api('POST', `/rooms/down-${i}`);
      expect(r.status).toBe(200);
      expect(sb.store.getPlacement('rooms', `down-${i}`)?.serverId).toBe('b');
    }
    agentA.reply = 'up';
    await until('a healthy', async () => (await view('a')).healthy);
    expect((await view('a')).health.lastError).toBeUndefined();
  });

  it('up does not override a failing health probe: both must pass', async () => {
    await register();
    sfuA.setHealthy(false);
    try {
      await until('a unhealthy', async () => !(await view('a')).healthy);
      await rounds(2);
      expect((await view('a')).healthy).toBe(false);
      expect((await view('a')).health.lastError).not.toMatch(/^agent/);
    } finally {
      sfuA.setHealthy(true);
    }
    await until('a healthy', async () => (await view('a')).healthy);
  });

  it('an unreachable agent is not an error, but a down it gave stays until it says up', async () => {
    await register();
    const port = agentA.port;
    await agentA.stop();
    try {
      await rounds(3);
      expect((await view('a')).healthy).toBe(true);
    } finally {
      await restartAgent(agentA, port);
    }
    agentA.reply = 'down';
    await until('a unhealthy', async () => !(await view('a')).healthy);
    await agentA.stop();
    try {
      await rounds(3);
      expect((await view('a')).healthy).toBe(false);
    } finally {
      await restartAgent(agentA, port);
    }
    agentA.reply = 'up';
    await until('a healthy', async () => (await view('a')).healthy);
  });

  it('NN% sets the weight relative to the configured weight; maxconn:N is kept as attributes.maxconn', async () => {
    await register();
    agentA.reply = 'up 50% maxconn:30';
    await until('weight 50', async () => (await view('a')).weight === 50);
    const a = await view('a');
    expect(a.attributes.maxconn).toBe(30);
    expect(a.capacity).toBe(100); // room capacity counts consumers, not connections
    agentA.reply = 'up 100%';
    await until('weight 100', async () => (await view('a')).weight === 100);
    await register({ weight: 10 });
    agentA.reply = '37%';
    await until('weight 4', async () => (await view('a')).weight === 4);
  });

  it('drain and ready from the agent set the admin state', async () => {
    await register();
    agentA.reply = 'up drain';
    await until('a drain', async () => (await view('a')).adminState === 'drain');
    for (let i = 0; i < 4; i++) {
      await api('POST', `/rooms/drain-${i}`);
      expect(sb.store.getPlacement('rooms', `drain-${i}`)?.serverId).toBe('b');
    }
    agentA.reply = 'up ready';
    await until('a active', async () => (await view('a')).adminState === 'active');
  });

  it('maint from the agent: no longer health-probed, but still asked, and its ready ends it', async () => {
    await register();
    agentA.reply = 'maint';
    await until('a maint', async () => (await view('a')).adminState === 'maint');
    const checks = sfuA.healthChecks;
    const polls = agentA.polls;
    await rounds(3);
    expect(sfuA.healthChecks).toBe(checks);
    expect(agentA.polls).toBeGreaterThan(polls);
    agentA.reply = 'ready';
    await until('a active', async () => (await view('a')).adminState === 'active');
  });

  it("an operator's drain is not undone by the agent's ready", async () => {
    await register();
    agentA.reply = 'up ready';
    expect((await api('POST', '/servers/a/drain')).status).toBe(200);
    await rounds(4);
    expect((await view('a')).adminState).toBe('drain');
    // Also when the agent had drained it first: the operator's drain makes it the operator's.
    expect((await api('DELETE', '/servers/a/drain')).status).toBe(200);
    agentA.reply = 'drain';
    await until('a drain (agent)', async () => (await view('a')).attributes.agentAdmin === 'drain');
    expect((await api('POST', '/servers/a/drain')).status).toBe(200);
    agentA.reply = 'ready';
    await rounds(4);
    expect((await view('a')).adminState).toBe('drain');
    expect((await api('DELETE', '/servers/a/drain')).status).toBe(200);
    expect((await view('a')).adminState).toBe('active');
  });

  it('a steady agent causes no store writes', async () => {
    await register();
    agentA.reply = 'up 50% maxconn:30';
    agentB.reply = 'drain 75%';
    await until('applied', async () => (await view('a')).weight === 50 && (await view('b')).adminState === 'drain' && (await view('b')).weight === 75);
    await rounds(1);
    const events: StoreEvent[] = [];
    const off = sb.store.subscribe((e) => {
      if (e.type === 'server' || e.type === 'server-removed') events.push(e);
    });
    const polls = agentA.polls;
    await rounds(5);
    off();
    expect(agentA.polls - polls).toBeGreaterThanOrEqual(4);
    expect(events).toEqual([]);
  });

  it('TURN servers too: maxconn:N is their capacity (allocations are connections), drain their admin state', async () => {
    const agent = await startAgent('drain 50% maxconn:40');
    try {
      const r = await api('POST', '/turn/register', { serverId: 't1', host: '127.0.0.1', port: 3478, agentPort: agent.port });
      expect(r.status).toBe(200);
      const turnView = async () => ((await api('GET', '/turn/servers')).body.servers as { serverId: string; capacity: number; adminState: string; weight: number }[]).find((s) => s.serverId === 't1')!;
      await until('t1 agent applied', async () => {
        const t = await turnView();
        return t.capacity === 40 && t.adminState === 'drain' && t.weight === 50;
      });
      agent.reply = 'ready maxconn:0';
      await until('t1 back', async () => {
        const t = await turnView();
        return t.capacity === 1e12 && t.adminState === 'active';
      });
    } finally {
      await api('DELETE', '/turn/servers/t1');
      await agent.stop();
    }
  });

  async function restartAgent(agent: Agent, port: number): Promise<void> {
    const fresh = createServer((socket) => {
      agent.polls++;
      socket.on('error', () => {});
      socket.end(`${agent.reply}\n`);
    });
    for (let i = 0; ; i++) {
      try {
        await new Promise<void>((resolve, reject) => {
          fresh.once('error', reject);
          fresh.listen(port, '127.0.0.1', () => resolve());
        });
        break;
      } catch (err) {
        if (i > 50) throw err;
        await sleep(50);
      }
    }
    agent.stop = () => new Promise((r) => fresh.close(() => r()));
  }
});
