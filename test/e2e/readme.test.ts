import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, startSwitchboard, type SwitchboardProcess } from '../helpers/process.js';
import { startSfu, type Sfu } from '../helpers/sfu.js';

/** The README's promise: `npm start` serves the seed-000 API on the in-memory default. */
type Json = Record<string, unknown>;
const started: SwitchboardProcess[] = [];
const sfus: Sfu[] = [];

afterAll(async () => {
  await Promise.all(started.map((p) => p.stop()));
  await Promise.all(sfus.map((s) => s.stop()));
});

async function post(url: string, body?: unknown): Promise<{ status: number; body: Json }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body ?? {}) });
  return { status: res.status, body: (await res.json()) as Json };
}

describe('README: npm start', () => {
  it('starts on the in-memory store and serves the API end to end, then stops cleanly on SIGTERM', async () => {
    const sb = await startSwitchboard({ command: ['npm', 'start', '--silent'], env: { LOG_LEVEL: 'info' } });
    started.push(sb);
    const health = (await (await fetch(`${sb.url}/healthz`)).json()) as Json;
    expect(health).toMatchObject({ status: 'ok', store: 'memory' });

    const sfu = await startSfu();
    sfus.push(sfu);
    expect(await post(`${sb.url}/register`, { serverId: 'server-001', serviceUrl: sfu.url, workers: 4 })).toEqual({
      status: 200,
      body: { message: 'Server registered successfully' },
    });
    const room = await post(`${sb.url}/rooms/room-67890`, { eventNotificationUri: 'http://127.0.0.1:9/notify', maxPeerCount: 3 });
    expect(room).toEqual({ status: 200, body: { protocol: '2060-mediasoup-v1', wsUrl: `ws://127.0.0.1:${sfu.port}`, roomId: 'room-67890' } });
    const server = (await (await fetch(`${sb.url}/servers/server-001`)).json()) as Json;
    expect(server).toMatchObject({ capacity: 2000, reserved: 12 });
    expect(await post(`${sb.url}/room-closed`, { serverId: 'server-001', roomId: 'room-67890' })).toEqual({
      status: 200,
      body: { message: 'Room closed notification processed successfully' },
    });
    const ui = await fetch(`${sb.url}/API/`);
    expect(ui.status).toBe(200);
    expect(await ui.text()).toContain('swagger');
    expect(sb.output()).toContain('Switchboard listening');

    const code = await sb.stop('SIGTERM');
    // npm passes SIGTERM to switchboard, which shuts down gracefully; npm itself then reports
    // the signal rather than an exit code.
    expect(code === 0 || sb.child.signalCode === 'SIGTERM').toBe(true);
    expect(sb.output()).toContain('shutting down');
  }, 60_000);
});

describe('CLI configuration', () => {
  it('reads a YAML config file, with environment variables overriding it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-config-'));
    const file = join(dir, 'switchboard.yaml');
    writeFileSync(file, 'server:\n  host: 127.0.0.1\nrooms:\n  consumersPerWorker: 100\nhealth:\n  intervalMs: 60000\n');
    const sb = await startSwitchboard({ args: ['--config-file', file] });
    started.push(sb);
    const sfu = await startSfu();
    sfus.push(sfu);
    await post(`${sb.url}/register`, { serverId: 's', serviceUrl: sfu.url, workers: 3 });
    expect(((await (await fetch(`${sb.url}/servers/s`)).json()) as Json).capacity).toBe(300);
  });

  it('refuses bad values at start with a message naming each one', async () => {
    const res = await runCli(['serve'], { APP_PORT: 'eighty', HEALTH_CHECK_INTERVAL: '-5', LOG_LEVEL: 'loud' });
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('server.port (env APP_PORT): must be integer; got "eighty"');
    expect(res.stderr).toContain('health.intervalMs (env HEALTH_CHECK_INTERVAL)');
    expect(res.stderr).toContain('logLevel (env LOG_LEVEL): must be one of');
  });

  it('says what to do when the config file is missing or Redis is unreachable', async () => {
    const missing = await runCli(['serve', '--config-file', '/nonexistent/switchboard.yaml']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('/nonexistent/switchboard.yaml: cannot read it (ENOENT)');
    const noRedis = await runCli(['serve'], { REDIS_URL: 'redis://127.0.0.1:1', APP_PORT: '0', LOG_LEVEL: 'silent' });
    expect(noRedis.code).toBe(1);
    expect(noRedis.stderr).toContain('cannot connect to Redis at redis://127.0.0.1:1');
  });
});
