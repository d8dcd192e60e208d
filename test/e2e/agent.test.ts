import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { stopChild, track } from '../helpers/children.js';
import { call, until, type Json } from '../helpers/http.js';
import { freePort } from '../helpers/ports.js';
import { repoRoot, startSwitchboard, type SwitchboardProcess } from '../helpers/process.js';
import { startSfu, type Sfu } from '../helpers/sfu.js';

/**
 * `switchboard agent` as an operator runs it beside a media server, with a `switchboard:` section:
 * it registers the server, heartbeats its load, answers HAProxy's agent check, and on SIGTERM
 * drains, waits for the server's rooms to end, deregisters and exits 0.
 */
const cleanup: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});

/** The media server's load, as its JSON load URL reports it; the test moves it. */
async function loadUrl(): Promise<{ url: string; set(load: Record<string, number>): void; server: Server }> {
  let load: Record<string, number> = { consumers: 0 };
  const server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(load)));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/load`, set: (l) => void (load = l), server };
}

function agentLine(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1' });
    let text = '';
    s.on('data', (d: Buffer) => (text += d.toString()));
    s.on('close', () => resolve(text.trim()));
    s.on('error', reject);
  });
}

describe('switchboard agent with Switchboard', () => {
  it('registers, heartbeats its load, and on SIGTERM drains, waits for the rooms, deregisters and exits 0', async () => {
    const sb: SwitchboardProcess = await startSwitchboard({ env: { HOST: '127.0.0.1', HEALTH_CHECK_INTERVAL: '60000' } });
    cleanup.push(() => sb.stop());
    const sfu: Sfu = await startSfu();
    cleanup.push(() => sfu.stop());
    const load = await loadUrl();
    cleanup.push(() => new Promise((r) => load.server.close(r)));
    load.set({ consumers: 42 });

    const agentPort = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'sb-agent-e2e-'));
    const file = join(dir, 'agent.yaml');
    writeFileSync(
      file,
      [
        'agent:',
        '  switchboard:',
        `    url: ${sb.url}`,
        '    pool: rooms',
        '    serverId: media-1',
        `    serviceUrl: ${sfu.url}`,
        '    workers: 1',
        '    heartbeatIntervalMs: 200',
        '    drainTimeoutMs: 20000',
        '',
      ].join('\n'),
    );
    const agent: ChildProcess = spawn(
      'node',
      ['bin/switchboard.js', 'agent', 'consumers', '400', '--config-file', file, '--port', String(agentPort), '--host', '127.0.0.1', '--no-system', '--json-url', load.url, '--interval', '200', '--drain-hold', '300'],
      { cwd: repoRoot, env: { ...process.env, LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    track(agent);
    cleanup.push(() => stopChild(agent, 'SIGKILL'));
    let out = '';
    agent.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    agent.stderr!.on('data', (d: Buffer) => (out += d.toString()));

    // Registered, with the load it reads heartbeated.
    await until(async () => (await call(sb.url, 'GET', '/servers/media-1')).status === 200, 15_000, () => `the agent to register\n${out}`);
    await until(async () => ((await call(sb.url, 'GET', '/servers/media-1')).body as Json).used === 42, 5000, () => `the load to arrive\n${out}`);
    load.set({ consumers: 100 });
    await until(async () => ((await call(sb.url, 'GET', '/servers/media-1')).body as Json).used === 100, 5000, 'the load to move');
    // HAProxy's question: 100 of 400 consumers used → 75 % headroom.
    const line = await agentLine(agentPort);
    // `ready` rides along for the first 30 s after start (it undoes a drain the agent asked for).
    expect(line.split(/[ ,]+/).filter((w) => w !== 'ready')).toEqual(['up', '75%']);

    // A room on it, then SIGTERM: drained at once, deregistered only once the room is closed.
    expect((await call(sb.url, 'POST', '/rooms/r1', {})).status).toBe(200);
    const exited = new Promise<number | null>((resolve) => agent.once('exit', (code) => resolve(code)));
    agent.kill('SIGTERM');
    await until(async () => ((await call(sb.url, 'GET', '/servers/media-1')).body as Json).adminState === 'drain', 5000, () => `the drain\n${out}`);
    // While draining, HAProxy is told `drain` (the agent keeps answering during --drain-hold).
    expect(await agentLine(agentPort)).toBe('drain');
    await new Promise((r) => setTimeout(r, 1000));
    expect((await call(sb.url, 'GET', '/servers/media-1')).status).toBe(200);
    expect(agent.exitCode).toBeNull();
    expect((await call(sb.url, 'POST', '/room-closed', { serverId: 'media-1', roomId: 'r1' })).status).toBe(200);
    expect(await exited).toBe(0);
    expect((await call(sb.url, 'GET', '/servers/media-1')).status).toBe(404);
  }, 60_000);
});
