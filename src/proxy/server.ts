import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { createSecureContext, createServer as createTlsServer, type SecureContext, type Server as TlsServer } from 'node:tls';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { BucketSpec } from '../core/token-bucket.js';
import type { NetworkPolicy } from '../security/network-policy.js';
import { PoolBalancer } from './balancer.js';
import { ClientConn, type ExchangeRecord, type ProxyContext } from './connection.js';
import type { Directory } from './directory.js';
import { ProxyMetrics } from './metrics.js';
import { createRateLimiter, type RateLimiter } from './rate-limit/index.js';
import { createRedisClient, type RedisClient } from '../store/redis/connection.js';
import { redisConnection } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { RoomRouter } from './rooms.js';
import { Router } from './router.js';
import { HttpPoolSchema, type HttpPoolConfig, type ProxyConfig } from './schema.js';
import { Value } from 'typebox/value';

/** How often deadlines, queue timeouts, ejections and slow start are looked at. */
const TICK_MS = 100;

export interface ProxyServerOptions {
  config: ProxyConfig;
  /** The http pools the proxy balances (their backends come from the directory). */
  pools: readonly string[];
  directory: Directory;
  registry: Registry;
  logger: Logger;
  networkPolicy?: NetworkPolicy;
  limiter?: RateLimiter;
  /** Redis for pools with `sharedRoundRobin` (the caller owns the connection). */
  sharedIndexClient?: RedisClient;
  /** Key prefix of the shared index (the store's, `sb`). */
  sharedIndexPrefix?: string;
}

/**
 * Seed 002's shared round-robin index: one INCR on `<prefix>:{<pool>}:rr` per request (the pool's
 * hash tag, like its other keys). When Redis fails, this process's own count goes on.
 */
/**
 * The proxy's rate limiter for `config`: none without limits; buckets in Redis with
 * `rateLimit.store: redis` (needs the Redis store), else in this process.
 */
export async function proxyRateLimiter(config: Config, logger: Logger): Promise<RateLimiter | undefined> {
  const limited = config.proxy.rateLimit.perIp !== undefined || config.proxy.routes.some((r) => r.rateLimit !== undefined);
  if (!limited) return undefined;
  if (config.proxy.rateLimit.store !== 'redis') return createRateLimiter({});
  if (config.store.type !== 'redis') throw new Error('proxy.rateLimit.store is redis but the store is memory: set REDIS_URL (or use store: local)');
  const limiter = createRateLimiter({ redis: redisConnection(config), prefix: `${config.store.redis.prefix}:`, logger });
  await (limiter as { ready?: (ms: number) => Promise<boolean> }).ready?.(5_000);
  return limiter;
}

export function openSharedIndexClient(config: Config): RedisClient | undefined {
  const wanted = Object.values(config.proxy.pools).some((p) => p.sharedRoundRobin && p.policy === 'round-robin');
  return wanted && config.store.type === 'redis' ? createRedisClient(redisConnection(config)) : undefined;
}

export function sharedCounter(client: RedisClient, prefix: string, pool: string): () => Promise<number> {
  const key = `${prefix}:{${pool}}:rr`;
  let local = 0;
  return () => client.incr(key).then(
    (n) => n,
    () => local++,
  );
}

/** The pool settings for `name`: its configured section, or the defaults. */
export function poolConfig(config: ProxyConfig, name: string): HttpPoolConfig {
  return config.pools[name] ?? (Value.Default(HttpPoolSchema, {}) as HttpPoolConfig);
}

/**
 * The HTTP/WebSocket data plane of one process: listeners (plain and TLS), the client
 * connections, one balancer per pool, room routing, the tick that runs every timeout.
 */
export class ProxyServer {
  readonly balancers = new Map<string, PoolBalancer>();
  readonly rooms: RoomRouter;
  private readonly ctx: ProxyContext;
  private readonly servers: (NetServer | TlsServer)[] = [];
  private tick: NodeJS.Timeout | undefined;
  private readonly unsubscribe: () => void;
  private readonly metrics: ProxyMetrics;
  /** The TLS listener's bound port, once listening (config.tls; port 0 binds a free one). */
  tlsPort: number | undefined;

  constructor(private readonly o: ProxyServerOptions) {
    const { config } = o;
    this.metrics = new ProxyMetrics(o.registry, () => this.balancers.values(), () => this.ctx.conns.size, o.logger.child({ component: 'proxy' }), config.accessLog.sampleRate);
    for (const name of o.pools) {
      this.balancers.set(name, new PoolBalancer(name, poolConfig(config, name), config.limits.maxIdlePerBackend, o.networkPolicy, Math.random, (u, successor) => this.metrics.forget(u, successor)));
    }
    if (o.sharedIndexClient) {
      for (const b of this.balancers.values()) {
        if (b.config.sharedRoundRobin && b.config.policy === 'round-robin') b.sharedIndex = sharedCounter(o.sharedIndexClient, o.sharedIndexPrefix ?? 'sb', b.name);
      }
    }
    this.rooms = new RoomRouter(o.directory, config.limits.maxIdlePerBackend, o.networkPolicy);
    const perIp: BucketSpec | undefined = config.rateLimit.perIp ? { rate: config.rateLimit.perIp.rate, burst: config.rateLimit.perIp.burst ?? Math.max(1, Math.ceil(config.rateLimit.perIp.rate)) } : undefined;
    const metrics = this.metrics;
    this.ctx = {
      limits: config.limits,
      router: new Router(config.routes, this.balancers.get(config.defaultPool), this.balancers),
      now: Date.now(),
      rooms: this.rooms,
      limiter: o.limiter,
      perIp,
      draining: false,
      conns: new Set(),
      record: (r: ExchangeRecord) => metrics.record(r),
      retried: (pool: string) => metrics.retried(pool),
    };
    const now = Date.now();
    for (const b of this.balancers.values()) b.sync(o.directory.servers(b.name), now);
    this.unsubscribe = o.directory.subscribe((pool) => this.balancers.get(pool)?.sync(o.directory.servers(pool), Date.now()));
  }

  /** Starts the listeners: plain HTTP on config.port, TLS on config.tls.port when configured. */
  async listen(): Promise<{ port: number; tlsPort?: number }> {
    const { config } = this.o;
    // The shared index's Redis connection first: commands fail at once while it connects.
    const redis = this.o.sharedIndexClient;
    if (redis && redis.status !== 'ready') {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(done, 5_000);
        redis.once('ready', done);
        // The store's clients connect lazily; a failed first connect retries in the background.
        if (redis.status === 'wait') redis.connect().catch(() => undefined);
      });
    }
    const plain = createNetServer({ noDelay: true }, (s) => this.accept(s, 'http'));
    plain.maxConnections = config.limits.maxConnections;
    this.servers.push(plain);
    const port = await listenOn(plain, config.host, config.port);
    let tlsPort: number | undefined;
    if (config.tls) {
      const certs = loadCerts(config.tls.certs);
      const secure = createTlsServer({ SNICallback: sniCallback(certs), ...certs[0]!.pair, handshakeTimeout: config.limits.headersTimeoutMs }, (s) => this.accept(s, 'https'));
      secure.maxConnections = config.limits.maxConnections;
      // A failed handshake is the client's problem, never the process's.
      secure.on('tlsClientError', () => undefined);
      this.servers.push(secure);
      tlsPort = await listenOn(secure, config.host, config.tls.port);
      this.tlsPort = tlsPort;
    }
    this.tick = setInterval(() => this.onTick(), TICK_MS);
    this.tick.unref();
    return tlsPort === undefined ? { port } : { port, tlsPort };
  }

  private accept(socket: Socket, proto: 'http' | 'https'): void {
    socket.on('error', () => undefined);
    if (this.ctx.draining) {
      socket.destroy();
      return;
    }
    new ClientConn(socket, this.ctx, proto);
  }

  private onTick(): void {
    const now = Date.now();
    this.ctx.now = now;
    for (const c of this.ctx.conns) if (c.deadline !== 0 && c.deadline <= now) c.timeout();
    for (const b of this.balancers.values()) {
      b.refresh(now);
      for (const w of b.expired(now)) (w as ClientConn).queueExpired();
    }
    this.rooms.prune();
  }

  /** Client connections open now. */
  get connections(): number {
    return this.ctx.conns.size;
  }

  /**
   * Graceful stop: no new connections; idle keep-alive connections close at once, busy ones after
   * their answer, WebSockets when they end; whatever is left after `graceMs` is cut.
   */
  async close(graceMs: number): Promise<void> {
    this.ctx.draining = true;
    this.unsubscribe();
    const closed = Promise.all(this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    const deadline = Date.now() + graceMs;
    while (this.ctx.conns.size > 0 && Date.now() < deadline) {
      for (const c of this.ctx.conns) c.drain();
      await new Promise((r) => setTimeout(r, 25));
    }
    for (const c of [...this.ctx.conns]) c.close();
    clearInterval(this.tick);
    for (const b of this.balancers.values()) b.close();
    this.rooms.close();
    await closed;
    await this.o.limiter?.close();
    this.o.sharedIndexClient?.disconnect();
  }
}

function listenOn(server: NetServer | TlsServer, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

type CertConfig = NonNullable<ProxyConfig['tls']>['certs'][number];
interface LoadedCert {
  pair: { cert: Buffer; key: Buffer };
  ctx: SecureContext;
  names: string[];
}

/** Reads and checks every certificate up front: a bad one fails the start naming its entry. */
function loadCerts(certs: readonly CertConfig[]): LoadedCert[] {
  return certs.map((c, i) => {
    const where = `proxy.tls.certs[${i}]`;
    let pair: LoadedCert['pair'];
    try {
      pair = { cert: readFileSync(c.cert), key: readFileSync(c.key) };
    } catch (err) {
      throw new Error(`${where}: ${(err as Error).message}`);
    }
    let ctx: SecureContext;
    try {
      ctx = createSecureContext(pair);
    } catch (err) {
      throw new Error(`${where} (cert ${c.cert}, key ${c.key}): ${(err as Error).message}`);
    }
    return { pair, ctx, names: c.servernames ?? certNames(pair.cert) };
  });
}

/** The names a certificate serves when `servernames` is left out: its DNS subjectAltNames, else its CN (as HAProxy's `crt`). */
function certNames(pem: Buffer): string[] {
  try {
    const x = new X509Certificate(pem);
    const san = (x.subjectAltName ?? '')
      .split(',')
      .map((e) => e.trim())
      .filter((e) => e.startsWith('DNS:'))
      .map((e) => e.slice(4));
    if (san.length > 0) return san;
    const cn = /(?:^|\n)CN=([^\n]+)/.exec(x.subject)?.[1];
    return cn ? [cn] : [];
  } catch {
    return [];
  }
}

/** SNI: exact names first, then `*.suffix` wildcards, else the first certificate. */
function sniCallback(certs: readonly LoadedCert[]): (name: string, cb: (err: Error | null, ctx?: SecureContext) => void) => void {
  const exact = new Map<string, SecureContext>();
  const wildcard: [string, SecureContext][] = [];
  const first = certs[0]!.ctx;
  for (const c of certs) {
    for (const n of c.names) {
      if (n.startsWith('*.')) wildcard.push([n.slice(1).toLowerCase(), c.ctx]);
      else if (!exact.has(n.toLowerCase())) exact.set(n.toLowerCase(), c.ctx);
    }
  }
  return (name, cb) => {
    // A fully qualified name (`a.test.`) is the same name.
    const n = (name.endsWith('.') ? name.slice(0, -1) : name).toLowerCase();
    const hit = exact.get(n) ?? wildcard.find(([suffix]) => n.endsWith(suffix))?.[1];
    cb(null, hit ?? first);
  };
}
