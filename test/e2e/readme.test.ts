import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
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

/** Pids of the processes under `pid`, from the parent pids in /proc (Linux). */
function descendants(pid: number): number[] {
  const parentOf = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      parentOf.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      /* exited meanwhile */
    }
  }
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const parent = queue.shift()!;
    for (const [child, ppid] of parentOf) {
      if (ppid === parent) {
        found.push(child);
        queue.push(child);
      }
    }
  }
  return found;
}

/** The `node bin/switchboard.js serve` process that `npm start` (pid `npmPid`) started. */
function switchboardProcess(npmPid: number): number | undefined {
  return descendants(npmPid).find((pid) => {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      return /(^|\/)node$/.test(argv[0]!) && argv.some((a) => a.endsWith('bin/switchboard.js')) && argv.includes('serve');
    } catch {
      return false;
    }
  });
}

/** Whether a process exists and is not a zombie. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

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

    // SIGTERM to the `switchboard serve` node process only (npm's grandchild, or child when sh
    // execs it), not to npm or the group: npm then exits with its script's exit code, so npm
    // exiting 0, not by a signal, means Switchboard itself exited 0 after its graceful shutdown.
    const node = switchboardProcess(sb.pid);
    expect(node, `no node bin/switchboard.js process under npm (pid ${sb.pid})`).toBeDefined();
    const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      if (sb.child.exitCode !== null || sb.child.signalCode !== null) resolve({ code: sb.child.exitCode, signal: sb.child.signalCode });
      else sb.child.once('close', (code, signal) => resolve({ code, signal }));
    });
    process.kill(node!, 'SIGTERM');
    const kill = setTimeout(() => void sb.stop('SIGKILL'), 15_000);
    const exit = await closed;
    clearTimeout(kill);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(alive(node!)).toBe(false);
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
