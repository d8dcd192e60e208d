import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stopChild, track } from '../helpers/children.js';
import { freePort } from '../helpers/ports.js';
import { repoRoot } from '../helpers/process.js';
import { startBackend, type Backend } from '../helpers/proxy.js';

/**
 * The README's proxy section, as written: `config/backends.json` in the working directory, then
 * `PORT=... WORKER_COUNT=2 HEALTH_CHECK_INTERVAL=... switchboard serve`.
 */
const dirs: string[] = [];
const children: ChildProcess[] = [];
const backends: Backend[] = [];

/** The environment without anything that would turn the proxy on or move it. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of ['PORT', 'WORKER_COUNT', 'BACKENDS_FILE', 'HEALTH_CHECK_INTERVAL', 'APP_PORT', 'REDIS_URL', 'REDIS_HOST', 'CONFIG_FILE']) delete env[k];
  return { ...env, LOG_LEVEL: 'info', ...extra };
}

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'sb-proxy-readme-'));
  dirs.push(d);
  return d;
}

interface Run {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

function run(cwd: string, env: Record<string, string>): Run {
  const child = spawn('node', [join(repoRoot, 'bin/switchboard.js'), 'serve'], { cwd, env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  track(child);
  children.push(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

async function until<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs: number, r?: Run): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check().catch(() => undefined);
    if (v) return v;
    if (r && r.child.exitCode !== null) throw new Error(`switchboard exited (${r.child.exitCode}) while waiting for ${what}:\n${r.output()}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${r ? `:\n${r.output()}` : ''}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

/** TCP ports a process listens on (`ss -ltnp`). */
function listeningPorts(pid: number): number[] {
  const out = execFileSync('ss', ['-ltnpH'], { encoding: 'utf8' });
  return out
    .split('\n')
    .filter((l) => l.includes(`pid=${pid},`))
    .map((l) => {
      const local = l.trim().split(/\s+/)[3] ?? '';
      return Number(local.slice(local.lastIndexOf(':') + 1));
    })
    .filter((p) => p > 0);
}

/** Processes whose parent is `pid` (ps exits 1 when there are none). */
function childPids(pid: number): number[] {
  try {
    return execFileSync('ps', ['--ppid', String(pid), '-o', 'pid='], { encoding: 'utf8' })
      .split('\n')
      .map((l) => Number(l.trim()))
      .filter((n) => n > 0);
  } catch {
    return [];
  }
}

beforeAll(async () => {
  for (const id of ['one', 'two']) backends.push(await startBackend(id));
});

afterAll(async () => {
  await Promise.all(children.map((c) => stopChild(c, 'SIGKILL')));
  await Promise.all(backends.map((b) => b.stop()));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("the README's proxy (seed 002's way)", () => {
  it('config/backends.json + PORT + WORKER_COUNT=2: requests through PORT reach both backends', async () => {
    const cwd = tempDir();
    mkdirSync(join(cwd, 'config'));
    writeFileSync(join(cwd, 'config/backends.json'), JSON.stringify({ backends: backends.map((b) => ({ host: '127.0.0.1', port: b.port })) }));
    const [port, appPort] = [await freePort(), await freePort()];
    const r = run(cwd, { PORT: String(port), APP_PORT: String(appPort), WORKER_COUNT: '2', HEALTH_CHECK_INTERVAL: '200' });
    await until('the API', async () => (await fetch(`http://127.0.0.1:${appPort}/healthz`)).status === 200, 30_000, r);
    await until(
      'both backends answering through PORT',
      async () => {
        const res = await fetch(`http://127.0.0.1:${port}/api/health`, { headers: { connection: 'close' } });
        await res.text();
        return res.status === 200 && backends.every((b) => b.paths.includes('/api/health'));
      },
      15_000,
      r,
    );
    // Spread over both (round-robin by default), every answer a backend's.
    const seen = new Map<string, number>();
    for (let i = 0; i < 20; i++) {
      const res = await fetch(`http://127.0.0.1:${port}/api/health?i=${i}`, { headers: { connection: 'close' } });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { backend: string; headers: Record<string, string> };
      expect(body.headers['x-forwarded-for']).toBe('127.0.0.1');
      seen.set(body.backend, (seen.get(body.backend) ?? 0) + 1);
    }
    expect([...seen.keys()].sort()).toEqual(['one', 'two']);
    // Two workers, the proxy on PORT and the API on APP_PORT.
    expect(childPids(r.child.pid!)).toHaveLength(2);
    // node:cluster's primary holds the shared listener (it hands connections to the workers).
    expect(listeningPorts(r.child.pid!).sort()).toEqual([appPort, port].sort());
    expect(r.output()).toContain(`proxy listening on http://127.0.0.1:${port}`);
    r.child.kill('SIGTERM');
    expect(await r.exited).toBe(0);
  }, 60_000);

  it('without backends.json and without PORT: no proxy listener, only the API', async () => {
    const cwd = tempDir();
    const appPort = await freePort();
    const r = run(cwd, { APP_PORT: String(appPort) });
    await until('the API', async () => (await fetch(`http://127.0.0.1:${appPort}/healthz`)).status === 200, 30_000, r);
    expect(listeningPorts(r.child.pid!)).toEqual([appPort]);
    expect(childPids(r.child.pid!)).toEqual([]);
    expect(r.output()).not.toContain('proxy listening');
    // The proxy's API is not there either.
    expect((await fetch(`http://127.0.0.1:${appPort}/backends`)).status).toBe(404);
    r.child.kill('SIGTERM');
    expect(await r.exited).toBe(0);
  }, 60_000);

  it('PORT already in use with WORKER_COUNT=2: exit code 1 saying so', async () => {
    const cwd = tempDir();
    mkdirSync(join(cwd, 'config'));
    writeFileSync(join(cwd, 'config/backends.json'), JSON.stringify({ backends: [{ host: '127.0.0.1', port: backends[0]!.port }] }));
    const busy = createServer();
    const port = await new Promise<number>((resolve) => busy.listen(0, '0.0.0.0', () => resolve((busy.address() as { port: number }).port)));
    try {
      const r = run(cwd, { PORT: String(port), APP_PORT: String(await freePort()), WORKER_COUNT: '2' });
      expect(await r.exited).toBe(1);
      expect(r.output()).toContain(`proxy port ${port} is in use; set PORT`);
      expect(childPids(r.child.pid!)).toEqual([]);
    } finally {
      busy.close();
    }
  }, 30_000);

  it('a bad config/backends.json: exit code 2, naming the file and the bad entry', async () => {
    const cwd = tempDir();
    mkdirSync(join(cwd, 'config'));
    const file = join(cwd, 'config/backends.json');
    writeFileSync(file, JSON.stringify({ backends: [{ host: '127.0.0.1', port: 3000 }, { host: '127.0.0.1', port: 70000 }] }));
    const r = run(cwd, { PORT: String(await freePort()), APP_PORT: String(await freePort()) });
    expect(await r.exited).toBe(2);
    const out = r.output();
    expect(out).toContain(file);
    expect(out).toMatch(/backends\[1\]\.port/);
    expect(out).toContain('70000');
    expect(out).not.toMatch(/backends\[0\]/);
  }, 30_000);

  it('backends.json that is not JSON: exit code 2 naming the file', async () => {
    const cwd = tempDir();
    mkdirSync(join(cwd, 'config'));
    const file = join(cwd, 'config/backends.json');
    writeFileSync(file, '{ "backends": [ { "host": "127.0.0.1", "port": 3000 }, ');
    const r = run(cwd, { APP_PORT: String(await freePort()) });
    expect(await r.exited).toBe(2);
    expect(r.output()).toContain(file);
  }, 30_000);
});
