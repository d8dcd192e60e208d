import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stopChild, track } from './children.js';

/**
 * A real HAProxy (`apt-get install haproxy`) in the foreground (`-db`) on a configuration the
 * test writes. `{{socket}}` in the text is replaced by a stats socket path in the temp dir; when
 * the text has no `stats socket` line, one is added to `global` (which is created if absent).
 */
export interface Haproxy {
  dir: string;
  socket: string;
  child: ChildProcess;
  output(): string;
  /** One Runtime API command on the stats socket. */
  runtime(command: string): Promise<string>;
  stop(): Promise<void>;
}

export async function startHaproxy(configText: string): Promise<Haproxy> {
  if (spawnSync('haproxy', ['-v']).error) throw new Error('haproxy not found: apt-get install -y haproxy');
  const dir = mkdtempSync(join(tmpdir(), 'sb-haproxy-'));
  const socket = join(dir, 'admin.sock');
  let text = configText.replaceAll('{{socket}}', socket);
  if (!/^\s*stats socket /m.test(text)) {
    const line = `    stats socket ${socket} mode 600 level admin`;
    text = /^global\s*$/m.test(text) ? text.replace(/^global\s*$/m, `global\n${line}`) : `global\n${line}\n\n${text}`;
  }
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(cfg, text);
  const check = spawnSync('haproxy', ['-c', '-f', cfg], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`haproxy refuses the configuration:\n${check.stdout}${check.stderr}\n${text}`);
  const child = spawn('haproxy', ['-f', cfg, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] });
  track(child);
  let log = '';
  child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`haproxy exited with ${child.exitCode}:\n${log}`);
    try {
      if ((await runtime(socket, 'show info')).includes('Name: HAProxy')) break;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) {
      await stopChild(child, 'SIGKILL');
      throw new Error(`haproxy's stats socket did not answer within 10 s:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    dir,
    socket,
    child,
    output: () => log,
    runtime: (command) => runtime(socket, command),
    async stop() {
      await stopChild(child, 'SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Sends one command to HAProxy's Runtime API (stats socket) and resolves with its whole answer. */
export function runtime(socketPath: string, command: string, timeoutMs = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(socketPath);
    let out = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`runtime "${command}": no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    s.setEncoding('utf8');
    s.on('connect', () => s.write(`${command}\n`));
    s.on('data', (d: string) => (out += d));
    s.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    s.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

/** `show stat` as rows keyed by its CSV header (pxname, svname, status, weight, ...). */
export async function showStat(socketPath: string): Promise<Record<string, string>[]> {
  const text = await runtime(socketPath, 'show stat');
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const header = (lines.shift() ?? '').replace(/^# /, '').split(',');
  return lines.map((l) => {
    const cells = l.split(',');
    return Object.fromEntries(header.map((h, i) => [h, cells[i] ?? '']));
  });
}
