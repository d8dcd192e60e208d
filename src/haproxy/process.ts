import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { RuntimeApi } from './runtime.js';
import type { HaproxyConfig } from './schema.js';

export interface ProcessOptions {
  config: HaproxyConfig;
  /** The rendered haproxy.cfg. */
  text: string;
  socket: string;
  mapFile: string;
  logger: Logger;
  /** Called after HAProxy was restarted (it died): its runtime state is the configuration's again. */
  onRestart?: () => void;
  /** How long to wait for the stats socket to answer after a start. */
  startTimeoutMs?: number;
}

/** Runs `haproxy -c -f <file>`: resolves with its output, rejects with it when the configuration is refused. */
export function checkConfigFile(binary: string, file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(binary, ['-c', '-f', file], { timeout: 30_000 }, (err, stdout, stderr) => {
      const out = `${stdout}${stderr}`.trim();
      if (err) reject(new Error(`haproxy -c refused ${file}:\n${out || err.message}`));
      else resolve(out);
    });
  });
}

/**
 * A managed HAProxy: writes the configuration (and an empty room map) to the run directory,
 * checks it (`haproxy -c`), runs `haproxy -f <cfg> -db` as a child, restarts it when it dies
 * (backing off from 500 ms to 10 s) and stops it at shutdown.
 */
export class HaproxyProcess {
  private child: ChildProcess | undefined;
  private stopping = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private backoffMs = 500;
  readonly cfgFile: string;
  /** Restarts after a crash (for tests and logs). */
  restarts = 0;

  constructor(private readonly o: ProcessOptions) {
    this.cfgFile = join(o.config.runDir, 'haproxy.cfg');
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(): Promise<void> {
    this.stopping = false;
    await mkdir(this.o.config.runDir, { recursive: true, mode: 0o700 });
    await writeFile(this.cfgFile, this.o.text, { mode: 0o600 });
    await writeFile(this.o.mapFile, '', { mode: 0o600 });
    await checkConfigFile(this.o.config.binary, this.cfgFile);
    await this.launch();
  }

  private async launch(): Promise<void> {
    // HAProxy loads the map file at start; the sync fills it through the Runtime API.
    await writeFile(this.o.mapFile, '', { mode: 0o600 });
    const child = spawn(this.o.config.binary, ['-f', this.cfgFile, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    let tail = '';
    const onOutput = (chunk: Buffer) => {
      const text = chunk.toString();
      tail = (tail + text).slice(-4_000);
      for (const line of text.split('\n')) if (line.trim()) this.o.logger.info({ haproxy: child.pid }, `haproxy: ${line.trim()}`);
    };
    child.stdout?.on('data', onOutput);
    child.stderr?.on('data', onOutput);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.once('error', (err) => this.o.logger.error({ err }, 'haproxy: cannot run the binary'));
    child.once('exit', (code, signal) => {
      if (this.child === child) this.child = undefined;
      if (this.stopping) return;
      this.o.logger.error({ code, signal, restartInMs: this.backoffMs }, 'haproxy exited; restarting it');
      this.restartTimer = setTimeout(() => void this.restart(), this.backoffMs);
      this.backoffMs = Math.min(this.backoffMs * 2, 10_000);
    });
    const api = new RuntimeApi(this.o.socket, 1_000);
    const deadline = Date.now() + (this.o.startTimeoutMs ?? 10_000);
    for (;;) {
      const state = await Promise.race([api.raw('show info').then(() => 'up' as const, () => 'down' as const), exited.then(() => 'exited' as const)]);
      if (state === 'up') break;
      if (state === 'exited') throw new Error(`haproxy exited at start:\n${tail.trim()}`);
      if (Date.now() > deadline) throw new Error(`haproxy: the stats socket ${this.o.socket} does not answer after start:\n${tail.trim()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    this.o.logger.info({ pid: child.pid, cfg: this.cfgFile, socket: this.o.socket }, 'haproxy started');
  }

  private async restart(): Promise<void> {
    this.restartTimer = undefined;
    if (this.stopping) return;
    try {
      await this.launch();
      this.restarts++;
      this.backoffMs = 500;
      this.o.onRestart?.();
    } catch (err) {
      this.o.logger.error({ err }, 'haproxy: restart failed');
      // A child that started but did not answer is killed; its exit schedules the next try.
      if (this.child && this.child.exitCode === null) this.child.kill('SIGKILL');
      else if (!this.stopping && !this.restartTimer) {
        this.restartTimer = setTimeout(() => void this.restart(), this.backoffMs);
        this.backoffMs = Math.min(this.backoffMs * 2, 10_000);
      }
    }
  }

  async stop(timeoutMs = 5_000): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    await exited;
    clearTimeout(timer);
  }
}
