import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import { buildApi, type ApiDeps } from './api/app.js';
import { buildSystemApi } from './api/system-api.js';
import { turnCredentialTokens } from './api/auth.js';
import { openWritesWarning } from './security/exposure.js';
import { redisConnection } from './config/load.js';
import type { Config } from './config/schema.js';
import { answerRoomsOnceMapped, startHaproxyMode, type HaproxyMode } from './haproxy/index.js';
import { createMetrics } from './metrics/registry.js';
import { Notifier } from './pools/notifier.js';
import { ORIGINS_POOL, OriginService } from './pools/origins/service.js';
import { StreamService } from './pools/origins/streams.js';
import { startOriginProxies, type OriginProxies } from './proxy/streaming/index.js';
import { registerMediaMetrics } from './proxy/streaming/metrics.js';
import { ROOMS_POOL, RoomService } from './pools/rooms/service.js';
import { TURN_POOL, TurnService } from './pools/turn/service.js';
import { agentTarget, queryAgent } from './probes/agent-check.js';
import { HealthChecker } from './probes/checker.js';
import { joinUrl, probeHttp, statusMatcher } from './probes/http.js';
import { HttpPoolService, httpPools } from './pools/http/service.js';
import { StoreDirectory } from './proxy/directory.js';
import { openSharedIndexClient, poolConfig, ProxyServer, proxyRateLimiter } from './proxy/server.js';
import { startProxyCluster, type ProxyCluster } from './proxy/cluster.js';
import type { RateLimiter } from './proxy/rate-limit/index.js';
import { NetworkPolicy } from './security/network-policy.js';
import { MemoryStore } from './store/memory.js';
import { RedisStore } from './store/redis/index.js';
import type { StateStore } from './store/store.js';

export const version: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export interface Switchboard {
  app: FastifyInstance;
  store: StateStore;
  rooms: RoomService;
  turn: TurnService;
  /** Streaming origins (seed 003). */
  origins: OriginService;
  /** Streams on origins (seed 003): stream → origin mapping and session indexes. */
  streams: StreamService;
  /** Seed 003's media listeners that are configured (RTMP, HTTP-FLV/HLS, WHIP/WHEP, WebRTC UDP). */
  originProxies?: OriginProxies;
  /** SRS's system API listener (origins.systemApiPort / PROXY_SYSTEM_API), when configured. */
  systemApi?: { app: FastifyInstance; url: string };
  checkers: HealthChecker[];
  /** HAProxy mode (config.haproxy.enabled): the HAProxy kept in step with the store. */
  haproxy?: HaproxyMode;
  /** HTTP backends (seed 002), when the proxy is enabled. */
  http?: HttpPoolService;
  /** The HTTP/WebSocket proxy in this process (proxy.workers = 1). */
  proxy?: ProxyServer;
  /** The proxy's worker processes (proxy.workers > 1). */
  proxyCluster?: ProxyCluster;
  /** Base URL of the proxy listener, when it runs. */
  proxyUrl?: string;
  /** Base URL of the proxy's TLS listener, when proxy.tls is configured. */
  proxyTlsUrl?: string;
  /** Base URL the API listens on. */
  url: string;
  close(): Promise<void>;
}

/** A listener address as clients on this host reach it. */
function displayHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

export function createLogger(config: Config): Logger {
  return pino({ level: config.logLevel, base: { service: 'switchboard' } });
}

/** Settings that are not configuration: what tests and embedders may tune. */
export interface StartOptions {
  /** The API's dashboard and event-stream tuning (chart interval, page directory, ...). */
  api?: Pick<ApiDeps, 'events' | 'history' | 'dashboardDir'>;
}

/** Wires one Switchboard instance from its configuration and starts it. */
export async function startSwitchboard(config: Config, logger: Logger = createLogger(config), options: StartOptions = {}): Promise<Switchboard> {
  const instanceId = randomUUID();
  const httpPoolNames = config.proxy.enabled ? httpPools(config.proxy) : [];
  const pools = [ROOMS_POOL, TURN_POOL, ORIGINS_POOL, ...httpPoolNames];
  const store: StateStore =
    config.store.type === 'redis'
      ? new RedisStore({ connection: redisConnection(config), prefix: config.store.redis.prefix, pools, logger })
      : new MemoryStore();
  await store.start();

  const metrics = createMetrics(store, pools);
  // SSRF guard: registrations, room creation, probes and webhooks (src/security/network-policy.ts).
  const networkPolicy = NetworkPolicy.fromConfig(config.security);
  const probeAgent = networkPolicy.agent({ connectTimeoutMs: config.health.timeoutMs });
  const notifier = new Notifier({
    timeoutMs: config.rooms.notifyTimeoutMs,
    networkPolicy,
    logger,
    onResult: (ok) => metrics.notifications.inc({ result: ok ? 'delivered' : 'failed' }),
  });
  const rooms = new RoomService({ store, config: config.rooms, notifier, metrics, logger, instanceId, networkPolicy });
  const turn = new TurnService({ store, config: config.turn, metrics, logger, networkPolicy });
  const origins = new OriginService({ store, config: config.origins, logger, instanceId });
  const streams = new StreamService({ store, instanceId, logger, sessionTtlMs: (config.origins.sessionTtlSeconds ?? 120) * 1000 });
  const askAgent = (server: Parameters<typeof agentTarget>[0]) => {
    const target = agentTarget(server);
    return target ? queryAgent(target, config.health.timeoutMs, networkPolicy) : Promise.resolve(undefined);
  };
  const roomChecker = new HealthChecker({
    store,
    pool: ROOMS_POOL,
    instanceId,
    intervalMs: config.health.intervalMs,
    thresholds: config.health,
    lostAfterMs: config.health.lostAfterMs,
    concurrency: config.health.concurrency,
    probe: (server) => probeHttp(joinUrl(server.serviceUrl, server.healthPath ?? config.health.path), config.health.timeoutMs, probeAgent),
    onProbe: (_server, outcome) => metrics.probeDuration.observe({ pool: ROOMS_POOL, result: outcome.ok ? 'ok' : 'failed' }, (outcome.latencyMs ?? 0) / 1000),
    // Servers registered with an agentPort: their HAProxy-style agent, each round. Room capacity
    // counts consumers, not connections, so `maxconn:N` is kept as attributes.maxconn.
    agent: { query: askAgent, maxconn: 'attribute' },
    onLost: (lost) => rooms.lost(lost),
    logger,
  });
  const turnChecker = new HealthChecker({
    store,
    pool: TURN_POOL,
    instanceId,
    intervalMs: config.turn.healthCheck.intervalSeconds * 1000,
    thresholds: config.turn.healthCheck,
    lostAfterMs: Infinity, // TURN allocations are not tracked as placements
    immediate: true, // TURN servers start unknown: the first probe decides
    concurrency: config.health.concurrency,
    probe: (server) => turn.probe(server),
    // TURN allocations are connections: an agent's `maxconn:N` is the server's capacity.
    agent: { query: askAgent, maxconn: 'capacity' },
    onProbe: (_server, outcome) => metrics.probeDuration.observe({ pool: TURN_POOL, result: outcome.ok ? 'ok' : 'failed' }, (outcome.latencyMs ?? 0) / 1000),
    onLost: () => {},
    logger,
  });
  const checkers = [roomChecker, turnChecker];
  const http = config.proxy.enabled ? new HttpPoolService({ store, config: config.proxy, logger }) : undefined;
  for (const pool of httpPoolNames) {
    const hc = poolConfig(config.proxy, pool).healthCheck;
    const intervalMs = hc.intervalMs ?? config.health.intervalMs;
    // A pool with its own interval and no timeout of its own: half its interval (capped at the
    // global timeout's 5 s default), as the global timeout follows HEALTH_CHECK_INTERVAL.
    const timeoutMs = Math.min(hc.timeoutMs ?? (hc.intervalMs !== undefined ? Math.min(5_000, Math.floor(hc.intervalMs / 2)) : config.health.timeoutMs), Math.max(10, intervalMs - 1));
    const healthy = statusMatcher(hc.expectStatus);
    checkers.push(
      new HealthChecker({
        store,
        pool,
        instanceId,
        intervalMs,
        thresholds: { successThreshold: hc.rise, failureThreshold: hc.fall },
        lostAfterMs: Infinity, // HTTP backends hold no placements
        immediate: true, // backends start unknown: the first probe decides
        concurrency: config.health.concurrency,
        probe: (server) => probeHttp(joinUrl(server.serviceUrl, server.healthPath ?? hc.path), timeoutMs, probeAgent, healthy),
        onProbe: (_server, outcome) => metrics.probeDuration.observe({ pool, result: outcome.ok ? 'ok' : 'failed' }, (outcome.latencyMs ?? 0) / 1000),
        agent: { query: askAgent, maxconn: 'attribute' },
        onLost: () => {},
        logger,
      }),
    );
  }

  const credentialTokens = turnCredentialTokens(config.auth, config.turn);
  // HAProxy mode: start (or attach to) HAProxy and keep it in step with the store (src/haproxy/).
  const haproxy = config.haproxy.enabled
    ? await startHaproxyMode({ config: config.haproxy, store, logger, networkPolicy }).catch(async (err: unknown) => {
        await store.close();
        throw err;
      })
    : undefined;
  if (haproxy) answerRoomsOnceMapped(rooms, haproxy);
  const app = await buildApi({ ...options.api, store, rooms, turn, origins, metrics, logger, version, networkPolicy, ...(http ? { http } : {}), turnCredentialTokens: credentialTokens, ...(config.auth.token ? { authToken: config.auth.token } : {}) });
  // SRS's system API (seed 003): a second listener with only its registration route.
  const systemApp =
    config.origins.systemApiPort !== undefined
      ? await buildSystemApi({ origins, logger, networkPolicy, ...(config.auth.token ? { authToken: config.auth.token } : {}) })
      : undefined;
  try {
    await app.listen({ host: config.server.host, port: config.server.port });
    if (systemApp) await systemApp.listen({ host: config.server.host, port: config.origins.systemApiPort! });
  } catch (err) {
    await app.close().catch(() => undefined);
    await systemApp?.close().catch(() => undefined);
    await haproxy?.close();
    await store.close();
    throw err;
  }
  // Logged before anything else is awaited, so before the first request is served.
  const listening = app.server.address();
  const exposed = openWritesWarning({
    host: config.server.host,
    port: typeof listening === 'object' && listening ? listening.port : config.server.port,
    authToken: config.auth.token,
    turnCredentialsOpen: !credentialTokens && config.turn.secret !== undefined,
  });
  if (exposed) logger.warn({ host: config.server.host, openWrites: true }, exposed);
  // The HTTP/WebSocket data plane (src/proxy/): configured backends registered, then the listener.
  let proxy: ProxyServer | undefined;
  let proxyCluster: ProxyCluster | undefined;
  let proxyUrl: string | undefined;
  let proxyTlsUrl: string | undefined;
  let limiter: RateLimiter | undefined;
  // A listener that cannot start stops what started before it.
  const undoStart = async () => {
    await proxy?.close(0);
    await proxyCluster?.close(0);
    await app.close().catch(() => undefined);
    await systemApp?.close().catch(() => undefined);
    await haproxy?.close();
    await store.close();
  };
  if (http) {
    try {
      await http.registerConfigured();
      if (config.proxy.workers > 1) {
        proxyCluster = await startProxyCluster({ config, store, pools: httpPoolNames, logger, metrics });
        proxyUrl = proxyCluster.url;
        proxyTlsUrl = proxyCluster.tlsUrl;
        if (proxyTlsUrl) logger.info({ url: proxyTlsUrl }, `proxy TLS listening on ${proxyTlsUrl}`);
      } else {
        // In cluster mode each worker makes its own (src/proxy/worker.ts).
        limiter = await proxyRateLimiter(config, logger);
        const sharedIndexClient = openSharedIndexClient(config);
        proxy = new ProxyServer({ config: config.proxy, pools: httpPoolNames, directory: new StoreDirectory(store), registry: metrics.registry, logger, networkPolicy, ...(limiter ? { limiter } : {}), ...(sharedIndexClient ? { sharedIndexClient, sharedIndexPrefix: config.store.redis.prefix } : {}) });
        const { port: proxyPort, tlsPort } = await proxy.listen();
        proxyUrl = `http://${displayHost(config.proxy.host)}:${proxyPort}`;
        if (tlsPort !== undefined) proxyTlsUrl = `https://${displayHost(config.proxy.host)}:${tlsPort}`;
        if (tlsPort !== undefined) logger.info({ port: tlsPort }, `proxy TLS listening on https://${displayHost(config.proxy.host)}:${tlsPort}`);
      }
      logger.info({ pools: httpPoolNames, backends: http.list().length, workers: config.proxy.workers }, `proxy listening on ${proxyUrl}`);
    } catch (err) {
      await undoStart();
      if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') throw Object.assign(new Error(`proxy port ${config.proxy.port} is in use; set PORT (or proxy.port) to a free port`), { code: 'EADDRINUSE_PROXY' });
      throw err;
    }
  }
  // Seed 003's media listeners (RTMP, HTTP-FLV/HLS, WHIP/WHEP, WebRTC UDP), each when its port is set.
  let originProxies: OriginProxies | undefined;
  try {
    originProxies = await startOriginProxies({ config, store, streams, logger, networkPolicy });
  } catch (err) {
    await undoStart();
    throw err;
  }
  registerMediaMetrics(metrics.registry, () => originProxies);
  await turn.start();
  rooms.start();
  origins.start();
  for (const c of checkers) c.start();
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.server.port;
  const host = config.server.host === '0.0.0.0' || config.server.host === '::' ? '127.0.0.1' : config.server.host;
  const bound = host === config.server.host ? '' : ` on all interfaces (${config.server.host})`;
  logger.info({ port, host: config.server.host, store: store.kind, instanceId, version }, `Switchboard listening on http://${host}:${port}${bound} (Swagger UI at /API)`);
  const systemAddress = systemApp?.server.address();
  const systemApi = systemApp
    ? { app: systemApp, url: `http://${host.includes(':') ? `[${host}]` : host}:${typeof systemAddress === 'object' && systemAddress ? systemAddress.port : config.origins.systemApiPort}` }
    : undefined;
  if (systemApi) logger.info({ url: systemApi.url }, `SRS system API (POST /api/v1/srs/register) listening on ${systemApi.url}`);
  if (config.turn.secret === undefined && turn.listServers().length > 0) {
    logger.warn('TURN servers are configured but turn.secret (TURN_SECRET) is not: /turn/ice-servers hands out no credentials (fine for coturn without authentication only)');
  }

  let closing: Promise<void> | undefined;
  return {
    app,
    store,
    rooms,
    turn,
    origins,
    streams,
    ...(originProxies ? { originProxies } : {}),
    ...(systemApi ? { systemApi } : {}),
    checkers,
    ...(haproxy ? { haproxy } : {}),
    ...(http ? { http } : {}),
    ...(proxy ? { proxy } : {}),
    ...(proxyCluster ? { proxyCluster } : {}),
    ...(proxyUrl ? { proxyUrl } : {}),
    ...(proxyTlsUrl ? { proxyTlsUrl } : {}),
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    close: () =>
      (closing ??= (async () => {
        turn.stop();
        origins.stop();
        // The data plane first: requests under way and open WebSockets get most of the grace.
        const proxyGrace = Math.floor(config.server.shutdownTimeoutMs * 0.6);
        await Promise.all([proxy?.close(proxyGrace), proxyCluster?.close(proxyGrace), originProxies?.close()]);
        await Promise.all(checkers.map((c) => c.stop()));
        // New requests get 503 while the ones under way finish: rooms being created start no
        // new attempt, and a media server still silent after the grace is cut short (its
        // placement released, the request answered 503), so nothing outlives shutdownTimeoutMs.
        const grace = Math.min(config.rooms.createTimeoutMs, Math.floor(config.server.shutdownTimeoutMs / 2));
        // Keep-alive connections whose request was under way when close began go idle only after
        // their answer: close them as they do (Node closes the idle ones only once, at close).
        const idle = setInterval(() => app.server.closeIdleConnections(), 50);
        await Promise.all([app.close(), systemApp?.close(), rooms.shutdown(grace)]).finally(() => clearInterval(idle));
        await rooms.close();
        await notifier.close();
        await probeAgent.close().catch(() => undefined);
        await haproxy?.close();
        await store.close();
      })()),
  };
}
