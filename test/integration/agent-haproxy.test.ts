import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stopChild, track } from '../helpers/children.js';
import { showStat, startHaproxy, type Haproxy } from '../helpers/haproxy.js';
import { freePort, waitForPort } from '../helpers/ports.js';
import { repoRoot } from '../helpers/process.js';

/**
 * Seed 004 end to end, with a real HAProxy: two backend servers, each with
 * `check agent-check agent-port <its agent> agent-inter 500`, and two `switchboard agent`
 * processes whose load comes from a JSON load URL this test serves (so it can move the load).
 * What HAProxy's stats socket shows is the outcome: DOWN over a threshold, UP below it, the
 * weight following the headroom, DRAIN on SIGUSR2 and on SIGTERM, MAINT from the state file.
 */

interface AgentProcess {
  port: number;
  child: ChildProcess;
  output(): string;
}

const load: Record<string, Record<string, number>> = { a: { cpu: 20 }, b: { cpu: 40 } };
let loadServer: Server;
let loadPort: number;
const backends: Server[] = [];
const agents: Record<string, AgentProcess> = {};
let haproxy: Haproxy;
const stateDir = mkdtempSync(join(tmpdir(), 'sb-agent-state-'));
const stateFile = join(stateDir, 'a.state');

async function listen(server: Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as { port: number }).port;
}

async function startAgentProcess(name: string, extra: string[] = []): Promise<AgentProcess> {
  const port = await freePort();
  const child = spawn(
    'node',
    ['bin/switchboard.js', 'agent', 'cpu', '80', '--port', String(port), '--host', '127.0.0.1', '--peers', '127.0.0.1',
      '--json-url', `http://127.0.0.1:${loadPort}/${name}`, '--no-system', '--interval', '200', '--timeout', '150',
      '--drain-hold', '1500', ...extra],
    { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  track(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  await waitForPort(port, '127.0.0.1', 15_000).catch((err: Error) => {
    throw new Error(`${err.message}\n${out}`);
  });
  return { port, child, output: () => out };
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; servers: ${JSON.stringify(await servers())}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The two servers as HAProxy's stats socket shows them. */
async function servers(): Promise<Record<string, { status: string; weight: number; check: string }>> {
  const rows = await showStat(haproxy.socket);
  return Object.fromEntries(
    rows.filter((r) => r.pxname === 'media' && (r.svname === 'a' || r.svname === 'b')).map((r) => [r.svname, { status: r.status ?? '', weight: Number(r.weight), check: r.agent_status ?? '' }]),
  );
}

const server = async (name: string) => (await servers())[name]!;

/** Connects to an agent from `localAddress` and returns what it said before closing. */
function ask(port: number, localAddress: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1', localAddress });
    let out = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (out += d));
    s.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' ? resolve(out) : reject(err)));
    s.on('close', () => resolve(out));
    s.setTimeout(3000, () => reject(new Error('agent kept the connection open')));
  });
}

beforeAll(async () => {
  loadServer = createServer((req, res) => {
    const body = load[(req.url ?? '/').slice(1)];
    if (!body) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  });
  loadPort = await listen(loadServer);
  const backendPorts: number[] = [];
  for (const name of ['a', 'b']) {
    const s = createServer((_req, res) => res.end(`backend ${name}\n`));
    backends.push(s);
    backendPorts.push(await listen(s));
  }
  agents.a = await startAgentProcess('a', ['--state-file', stateFile]);
  agents.b = await startAgentProcess('b');
  const frontPort = await freePort();
  haproxy = await startHaproxy(
    [
      'global',
      '    log stderr format raw local0 warning',
      'defaults',
      '    mode http',
      '    timeout connect 1s',
      '    timeout client 5s',
      '    timeout server 5s',
      'frontend fe',
      `    bind 127.0.0.1:${frontPort}`,
      '    default_backend media',
      'backend media',
      '    balance roundrobin',
      `    server a 127.0.0.1:${backendPorts[0]} weight 100 check inter 500 agent-check agent-port ${agents.a.port} agent-inter 500`,
      `    server b 127.0.0.1:${backendPorts[1]} weight 100 check inter 500 agent-check agent-port ${agents.b.port} agent-inter 500`,
      '',
    ].join('\n'),
  );
}, 60_000);

afterAll(async () => {
  await haproxy?.stop();
  for (const a of Object.values(agents)) await stopChild(a.child, 'SIGKILL');
  for (const s of [loadServer, ...backends]) await new Promise((r) => s?.close(r));
});

describe('switchboard agent behind a real HAProxy', () => {
  it('the weight HAProxy reports follows the headroom (up NN%)', async () => {
    // cpu 20 of 80 → 75 % headroom; cpu 40 of 80 → 50 %.
    await until('weights 75 and 50', async () => {
      const s = await servers();
      return s.a?.status === 'UP' && s.a.weight === 75 && s.b?.status === 'UP' && s.b.weight === 50;
    });
    load.b = { cpu: 60 };
    await until('b weight 25', async () => (await server('b')).weight === 25);
  });

  it('a threshold crossed → DOWN; back below → UP', async () => {
    load.a = { cpu: 85 };
    await until('a DOWN', async () => (await server('a')).status.startsWith('DOWN'));
    expect((await server('b')).status).toBe('UP');
    load.a = { cpu: 8 };
    await until('a UP at weight 90', async () => {
      const a = await server('a');
      return a.status === 'UP' && a.weight === 90;
    });
  });

  it('a failing load source → DOWN after 3 failures; UP when it answers again', async () => {
    const saved = load.a!;
    delete load.a; // 404
    await until('a DOWN (source failing)', async () => (await server('a')).status.startsWith('DOWN'));
    load.a = saved;
    await until('a UP again', async () => (await server('a')).status === 'UP');
  });

  it('SIGUSR2 toggles drain: DRAIN, then UP again (the agent says ready)', async () => {
    agents.b!.child.kill('SIGUSR2');
    await until('b DRAIN', async () => (await server('b')).status.startsWith('DRAIN'));
    agents.b!.child.kill('SIGUSR2');
    await until('b UP after drain', async () => (await server('b')).status === 'UP');
  });

  it('maint from the state file: MAINT, then UP when it says ready', async () => {
    writeFileSync(stateFile, 'maint\n');
    await until('a MAINT', async () => (await server('a')).status.startsWith('MAINT'));
    writeFileSync(stateFile, 'ready\n');
    await until('a UP after maint', async () => (await server('a')).status === 'UP');
  });

  it('a peer not on the allow-list gets no answer', async () => {
    expect(await ask(agents.a!.port, '127.0.0.1')).toMatch(/^up \d+%\n$|^up ready \d+%\n$/);
    expect(await ask(agents.a!.port, '127.0.0.2')).toBe('');
  });

  it('SIGTERM: the agent answers drain (HAProxy shows DRAIN), then exits 0', async () => {
    const child = agents.b!.child;
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    await until('b DRAIN after SIGTERM', async () => (await server('b')).status.startsWith('DRAIN'), 5_000);
    expect(await exited).toBe(0);
    expect(agents.b!.output()).toContain('draining, then exiting');
  });
});
