import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { asGroup, stopChild, track } from './children.js';
import { freePort } from './ports.js';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

export interface SwitchboardProcess {
  port: number;
  url: string;
  pid: number;
  child: ChildProcess;
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts Switchboard as its users do: `command` (default `node bin/switchboard.js serve`) in the
 * repository, on a free port, and waits until /healthz answers.
 */
export async function startSwitchboard(opts: { env?: Record<string, string>; args?: string[]; command?: string[] } = {}): Promise<SwitchboardProcess> {
  const port = Number(opts.env?.APP_PORT ?? (await freePort()));
  const [cmd, ...args] = opts.command ?? ['node', 'bin/switchboard.js', 'serve', ...(opts.args ?? [])];
  const child = spawn(cmd!, args, {
    cwd: repoRoot,
    env: { ...process.env, LOG_LEVEL: process.env.SB_TEST_LOG_LEVEL ?? 'warn', ...opts.env, APP_PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
    // A wrapper command (npm start) runs switchboard as a grandchild: signal the whole group.
    detached: opts.command !== undefined,
  });
  if (opts.command) asGroup(child);
  track(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`switchboard exited with ${child.exitCode} before serving:\n${out}`);
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.status === 200) break;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) {
      await stopChild(child, 'SIGKILL');
      throw new Error(`switchboard did not serve /healthz on ${url} within 30 s:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { port, url, pid: child.pid!, child, output: () => out, stop: (signal = 'SIGTERM') => stopChild(child, signal, 10_000) };
}

/** Runs `switchboard <args>` to completion. */
export function runCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('node', ['bin/switchboard.js', ...args], { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    track(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`switchboard ${args.join(' ')} did not finish within 20 s:\n${stdout}${stderr}`));
    }, 20_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
