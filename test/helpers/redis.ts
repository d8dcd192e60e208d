import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stopChild, track } from './children.js';
import { freePort } from './ports.js';

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1' });
    let buf = '';
    s.setTimeout(500, () => (s.destroy(), resolve(false)));
    s.once('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => {
      buf += d.toString();
      if (buf.includes('\r\n')) {
        s.destroy();
        resolve(buf.startsWith('+PONG'));
      }
    });
    s.once('error', () => resolve(false));
  });
}

/** A real redis-server on loopback, without persistence (a restart loses the data on purpose). */
export class RedisServer {
  private child: ChildProcess | undefined;
  private readonly dir = mkdtempSync(join(tmpdir(), 'sb-redis-'));

  private constructor(readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(opts: { port?: number } = {}): Promise<RedisServer> {
    if (spawnSync('redis-server', ['--version']).error) throw new Error('redis-server not found: apt-get install -y redis-server');
    const server = new RedisServer(opts.port ?? (await freePort()));
    await server.launch();
    return server;
  }

  private async launch(): Promise<void> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const child = spawn(
        'redis-server',
        ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--dir', this.dir, '--loglevel', 'warning'],
        { stdio: 'ignore' },
      );
      track(child);
      this.child = child;
      while (Date.now() < deadline && child.exitCode === null) {
        if (await ping(this.port)) return;
        await new Promise((r) => setTimeout(r, 50));
      }
      if (child.exitCode === null) {
        await stopChild(child, 'SIGKILL');
        throw new Error(`redis-server on port ${this.port} did not answer PING`);
      }
      // Exited early: the port may still be held for a moment after a restart; retry.
      if (Date.now() > deadline) throw new Error(`redis-server could not start on port ${this.port}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async stop(): Promise<void> {
    if (this.child) await stopChild(this.child);
    this.child = undefined;
  }

  /** Stops and starts again on the same port, empty. */
  async restart(): Promise<void> {
    await this.stop();
    await this.launch();
  }

  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
