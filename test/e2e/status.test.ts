import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { paint, renderStatus, type StatusJson } from '../../src/cli/status.js';
import { freePort } from '../helpers/ports.js';
import { runCli, startSwitchboard, type SwitchboardProcess } from '../helpers/process.js';
import { startSfu, type Sfu } from '../helpers/sfu.js';

/** `switchboard status` (run `npm run build` first): the built CLI against a running Switchboard. */
let sb: SwitchboardProcess;
let sfu: Sfu;

async function post(path: string, body?: unknown): Promise<number> {
  const res = await fetch(sb.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body ?? {}) });
  await res.arrayBuffer();
  return res.status;
}

beforeAll(async () => {
  sfu = await startSfu();
  // PORT turns the HTTP proxy on: its pools (web, media) are listed too.
  sb = await startSwitchboard({ env: { HOST: '127.0.0.1', HEALTH_CHECK_INTERVAL: '600000', PORT: String(await freePort()), WORKER_COUNT: '1' } });
  expect(await post('/register', { serverId: 'sfu-a', serviceUrl: sfu.url, workers: 2, region: 'eu' })).toBe(200);
  expect(await post('/register', { serverId: 'sfu-b', serviceUrl: sfu.url, workers: 1 })).toBe(200);
  expect(await post('/rooms/status-room', { maxPeerCount: 3 })).toBe(200);
  expect(await post('/servers/sfu-b/drain')).toBe(200);
  expect(await post('/turn/register', { host: '127.0.0.1', port: 3478, region: 'eu' })).toBe(200);
  expect(await post('/backends', { pool: 'web', host: '127.0.0.1', port: Number(new URL(sfu.url).port), id: 'web-1' })).toBe(200);
});
afterAll(async () => {
  await sb?.stop();
  await sfu?.stop();
});

describe('switchboard status', () => {
  it('--json: pools and servers with stable keys', async () => {
    const run = await runCli(['status', '--url', sb.url, '--json']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const status = JSON.parse(run.stdout) as StatusJson;
    expect(Object.keys(status)).toEqual(['url', 'fetchedAt', 'pools', 'servers']);
    expect(status.url).toBe(sb.url);
    expect(status.pools).toEqual([
      // sfu-a holds the room (3 peers: 12 consumers); sfu-b is drained, so only sfu-a's free units count.
      { pool: 'rooms', servers: 2, healthy: 2, placeable: 1, capacity: 1500, used: 12, free: 988, placements: 1 },
      expect.objectContaining({ pool: 'turn', servers: 1, placements: 0 }),
      expect.objectContaining({ pool: 'origins', servers: 0, placements: 0 }),
      expect.objectContaining({ pool: 'web', servers: 1, placements: 0 }),
      expect.objectContaining({ pool: 'media', servers: 0 }),
    ]);
    // Each server under its own pool (GET /servers also lists backends: not read by status).
    expect(status.servers.filter((s) => s.pool === 'rooms').map((s) => s.serverId)).toEqual(['sfu-a', 'sfu-b']);
    expect(status.servers.filter((s) => s.pool === 'web').map((s) => s.serverId)).toEqual(['web-1']);
    const byId = Object.fromEntries(status.servers.map((s) => [s.serverId, s]));
    expect(byId['sfu-a']).toEqual({
      pool: 'rooms',
      serverId: 'sfu-a',
      health: 'healthy',
      healthy: true,
      lastError: null,
      adminState: 'active',
      capacity: 1000,
      used: 12,
      free: 988,
      placements: 1,
      weight: expect.any(Number),
      region: 'eu',
      heartbeatAgeSeconds: expect.any(Number),
    });
    expect(byId['sfu-b']).toMatchObject({ pool: 'rooms', adminState: 'drain', region: null, placements: 0 });
    expect(byId['127.0.0.1']).toMatchObject({ pool: 'turn', region: 'eu' });
    for (const s of status.servers) expect(Object.keys(s)).toEqual(Object.keys(byId['sfu-a']!));
  });

  it('plain output names every server, without colour when not on a terminal', async () => {
    const run = await runCli(['status', '--url', sb.url]);
    expect(run.code).toBe(0);
    for (const id of ['sfu-a', 'sfu-b', '127.0.0.1']) expect(run.stdout).toContain(id);
    expect(run.stdout).toMatch(/rooms\s+2\s+2\s+1/);
    expect(run.stdout).toContain('drain');
    expect(run.stdout).not.toContain('\u001b[');
  });

  it('defaults to http://127.0.0.1:$APP_PORT', async () => {
    const run = await runCli(['status', '--json'], { APP_PORT: String(sb.port) });
    expect(run.code).toBe(0);
    expect((JSON.parse(run.stdout) as StatusJson).url).toBe(`http://127.0.0.1:${sb.port}`);
  });

  it('exits 1 with a clear message when nothing listens at --url', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    for (const args of [['status', '--url', url], ['status', '--url', url, '--json']]) {
      const run = await runCli(args);
      expect(run.code).toBe(1);
      expect(run.stdout).toBe('');
      expect(run.stderr.trim()).toBe(`switchboard status: cannot reach Switchboard at ${url}: ECONNREFUSED — is it running? set --url`);
    }
  });

  it('colours health, admin state and bars on a terminal', () => {
    const status: StatusJson = {
      url: 'http://x',
      fetchedAt: new Date(0).toISOString(),
      pools: [{ pool: 'rooms', servers: 1, healthy: 0, placeable: 0, capacity: 10, used: 9, free: 0, placements: 3 }],
      servers: [
        { pool: 'rooms', serverId: 's', health: 'unhealthy', healthy: false, lastError: 'ECONNREFUSED', adminState: 'drain', capacity: 10, used: 9, free: 1, placements: 3, weight: 1, region: null, heartbeatAgeSeconds: 4 },
      ],
    };
    const coloured = renderStatus(status, true);
    expect(coloured).toContain(paint(true)('red', 'unhealthy'));
    expect(coloured).toContain(paint(true)('yellow', 'drain'));
    expect(coloured).toContain('█');
    expect(coloured).toContain('ECONNREFUSED');
    const plain = renderStatus(status, false);
    expect(plain).not.toContain('\u001b[');
    expect(plain).toContain('[#########.]');
  });
});
