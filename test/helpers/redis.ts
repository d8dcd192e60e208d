import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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

  private constructor(
    readonly port: number,
    private readonly extraArgs: string[] = [],
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** `cluster`: a cluster-enabled node; `replicaOf`: a replica of the redis-server on that port. */
  static async start(opts: { port?: number; cluster?: boolean; replicaOf?: number } = {}): Promise<RedisServer> {
    if (spawnSync('redis-server', ['--version']).error) throw new Error('redis-server not found: apt-get install -y redis-server');
    const port = opts.port ?? (await freePort());
    const extra: string[] = [];
    if (opts.cluster) extra.push('--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', '2000');
    if (opts.replicaOf) extra.push('--replicaof', '127.0.0.1', String(opts.replicaOf));
    const server = new RedisServer(port, extra);
    await server.launch();
    return server;
  }

  private async launch(): Promise<void> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const child = spawn(
        'redis-server',
        [
          ...['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--dir', this.dir, '--loglevel', 'warning'],
          ...this.extraArgs,
        ],
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

/** A real Redis Cluster on loopback: `masters` redis-servers, slots spread by `redis-cli --cluster create`. */
export class RedisCluster {
  private constructor(readonly servers: RedisServer[]) {}

  get nodes(): { host: string; port: number }[] {
    return this.servers.map((s) => ({ host: '127.0.0.1', port: s.port }));
  }

  static async start(masters = 3): Promise<RedisCluster> {
    const servers: RedisServer[] = [];
    for (let i = 0; i < masters; i++) servers.push(await RedisServer.start({ cluster: true }));
    const cluster = new RedisCluster(servers);
    const create = spawnSync('redis-cli', ['--cluster', 'create', ...cluster.nodes.map((n) => `${n.host}:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'], { encoding: 'utf8' });
    if (create.status !== 0) {
      await cluster.dispose();
      throw new Error(`redis-cli --cluster create failed: ${create.stdout}${create.stderr}`);
    }
    const deadline = Date.now() + 15_000;
    for (;;) {
      const states = servers.map((s) => spawnSync('redis-cli', ['-p', String(s.port), 'cluster', 'info'], { encoding: 'utf8' }).stdout);
      if (states.every((info) => info.includes('cluster_state:ok'))) return cluster;
      if (Date.now() > deadline) {
        await cluster.dispose();
        throw new Error('Redis Cluster did not reach cluster_state:ok within 15 s');
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** The port of the master holding keys in `key`'s slot (undefined if none holds any yet). */
  ownerOf(key: string): number | undefined {
    const cli = (port: number, ...args: string[]) => spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' }).stdout.trim();
    const slot = cli(this.servers[0]!.port, 'cluster', 'keyslot', key);
    return this.servers.find((s) => Number(cli(s.port, 'cluster', 'countkeysinslot', slot)) > 0)?.port;
  }

  async dispose(): Promise<void> {
    await Promise.all(this.servers.map((s) => s.dispose()));
  }
}

/**
 * Redis with Sentinel on loopback: a master, one replica and one sentinel (quorum 1) that fails
 * over to the replica one second after the master stops answering.
 */
export class RedisSentinel {
  readonly name = 'switchboard';
  private sentinel: ChildProcess | undefined;
  private readonly dir = mkdtempSync(join(tmpdir(), 'sb-sentinel-'));

  private constructor(
    readonly master: RedisServer,
    readonly replica: RedisServer,
    readonly sentinelPort: number,
  ) {}

  get sentinels(): { host: string; port: number }[] {
    return [{ host: '127.0.0.1', port: this.sentinelPort }];
  }

  static async start(): Promise<RedisSentinel> {
    const master = await RedisServer.start();
    const replica = await RedisServer.start({ replicaOf: master.port });
    const s = new RedisSentinel(master, replica, await freePort());
    const conf = join(s.dir, 'sentinel.conf');
    writeFileSync(
      conf,
      [
        `port ${s.sentinelPort}`,
        'bind 127.0.0.1',
        `dir ${s.dir}`,
        `sentinel monitor ${s.name} 127.0.0.1 ${master.port} 1`,
        `sentinel down-after-milliseconds ${s.name} 1000`,
        `sentinel failover-timeout ${s.name} 5000`,
        '',
      ].join('\n'),
    );
    const child = spawn('redis-server', [conf, '--sentinel', '--loglevel', 'warning'], { stdio: 'ignore' });
    track(child);
    s.sentinel = child;
    const deadline = Date.now() + 10_000;
    while (!(await ping(s.sentinelPort)) || s.role(replica.port) !== 'slave' || !s.replicaInSync()) {
      if (Date.now() > deadline) {
        await s.dispose();
        throw new Error('Sentinel setup (master, replica, sentinel) not ready within 10 s');
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    return s;
  }

  role(port: number): string {
    return /role:(\w+)/.exec(spawnSync('redis-cli', ['-p', String(port), 'info', 'replication'], { encoding: 'utf8' }).stdout)?.[1] ?? 'down';
  }

  private replicaInSync(): boolean {
    return /master_link_status:up/.test(spawnSync('redis-cli', ['-p', String(this.replica.port), 'info', 'replication'], { encoding: 'utf8' }).stdout);
  }

  /** The master's address as the sentinel reports it. */
  currentMaster(): number {
    const out = spawnSync('redis-cli', ['-p', String(this.sentinelPort), 'sentinel', 'get-master-addr-by-name', this.name], { encoding: 'utf8' }).stdout;
    return Number(out.trim().split('\n')[1]);
  }

  async dispose(): Promise<void> {
    if (this.sentinel) await stopChild(this.sentinel);
    await Promise.all([this.master.dispose(), this.replica.dispose()]);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
