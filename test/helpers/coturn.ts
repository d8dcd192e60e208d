import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { stopChild, track } from './children.js';
import { freePort, waitForPort } from './ports.js';

/** A real coturn `turnserver` on a loopback address, with TURN REST API (shared secret) auth. */
export class Coturn {
  private child: ChildProcess | undefined;
  private log = '';

  private constructor(
    readonly host: string,
    readonly port: number,
    private readonly secret: string,
  ) {}

  static async start(host: string, secret: string): Promise<Coturn> {
    if (spawnSync('turnserver', ['--version']).error) throw new Error('turnserver not found: apt-get install -y coturn');
    const c = new Coturn(host, await freePort(), secret);
    await c.launch();
    return c;
  }

  output(): string {
    return this.log;
  }

  async launch(): Promise<void> {
    const relayBase = 40000 + Math.floor(Math.random() * 20000);
    this.child = spawn(
      'turnserver',
      [
        '-n', `--listening-ip=${this.host}`, `--relay-ip=${this.host}`, `--listening-port=${this.port}`,
        '--no-tls', '--no-dtls', '--no-cli', '--no-software-attribute',
        '--use-auth-secret', `--static-auth-secret=${this.secret}`, '--realm=switchboard.test',
        '--allow-loopback-peers', `--min-port=${relayBase}`, `--max-port=${relayBase + 100}`,
        '--log-file=stdout', '--simple-log',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    track(this.child);
    this.child.stdout!.on('data', (d: Buffer) => (this.log += d.toString()));
    this.child.stderr!.on('data', (d: Buffer) => (this.log += d.toString()));
    await waitForPort(this.port, this.host, 10_000);
  }

  async stop(): Promise<void> {
    if (this.child) await stopChild(this.child);
    this.child = undefined;
  }
}

/** Tries a TURN allocation with turnutils_uclient; true when it was granted. */
export function allocate(host: string, port: number, username: string, password: string): { ok: boolean; output: string } {
  const res = spawnSync('turnutils_uclient', ['-n', '0', '-m', '1', '-l', '100', '-e', host, '-X', '-g', '-u', username, '-w', password, '-p', String(port), host], {
    timeout: 20_000,
    encoding: 'utf8',
  });
  const output = `${res.stdout ?? ''}${res.stderr ?? ''}`;
  return { ok: res.status === 0 && !output.includes('Cannot complete Allocation'), output };
}
