import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { createApiBase } from './base.js';
import type { Logger } from 'pino';
import type { Metrics } from '../metrics/registry.js';
import { ORIGINS_POOL, type OriginService } from '../pools/origins/service.js';
import { ROOMS_POOL, type RoomService } from '../pools/rooms/service.js';
import { TURN_POOL, type TurnService } from '../pools/turn/service.js';
import { NetworkPolicy } from '../security/network-policy.js';
import type { StateStore } from '../store/store.js';
import { backendRoutes } from './routes/backends.js';
import type { HttpPoolService } from '../pools/http/service.js';
import { EventHub, eventRoutes, type EventsTuning } from './routes/events.js';
import { dashboardRoutes } from './routes/dashboard.js';
import { ActivityLog } from '../dashboard/activity.js';
import { CHART_METRICS, StatsHistory, type StatsHistoryOptions } from '../dashboard/history.js';
import { metricsTextOf } from '../metrics/registry.js';
import { PoolAdmin } from '../pools/admin.js';
import { originRoutes } from './routes/origins.js';
import { poolRoutes } from './routes/pools.js';
import { roomRoutes } from './routes/rooms.js';
import { serverRoutes } from './routes/servers.js';
import { systemRoutes } from './routes/system.js';
import { turnRoutes } from './routes/turn.js';

export interface ApiDeps {
  /** The proxy's HTTP backends, when the proxy is enabled. */
  http?: HttpPoolService;
  store: StateStore;
  rooms: RoomService;
  turn: TurnService;
  /** Streaming origins (seed 003): SRS's registration and the generic origins API. */
  origins?: OriginService;
  metrics: Metrics;
  logger: Logger;
  authToken?: string;
  /** Bearer tokens GET /turn/ice-servers needs (turnCredentialTokens in auth.ts); open when unset. */
  turnCredentialTokens?: string[] | undefined;
  /** Where registered serviceUrls, webhooks and TURN addresses may point (security.allowedNetworks). */
  networkPolicy?: NetworkPolicy;
  version: string;
  /** `GET /events` tuning (heartbeat, client cap, ...); defaults otherwise. */
  events?: Partial<EventsTuning>;
  /** The dashboard's charts: sampling interval and length; defaults otherwise. */
  history?: Partial<StatsHistoryOptions>;
  /** Where the built dashboard page is (tests); dist/web/dashboard otherwise. */
  dashboardDir?: string;
}

/** The pools the dashboard routes show (`GET /pools`, `GET /events`), in display order; then the proxy's HTTP pools. */
export const DASHBOARD_POOLS: readonly string[] = [ROOMS_POOL, TURN_POOL, ORIGINS_POOL];

/** The control-plane HTTP API: thin routes over the pools, OpenAPI from the route schemas. */
export async function buildApi(deps: ApiDeps): Promise<FastifyInstance> {
  const app = createApiBase({ logger: deps.logger, authToken: deps.authToken });

  await app.register(swagger, {
    openapi: {
      info: { title: 'Switchboard', description: 'Load balancer for real-time media infrastructure.', version: deps.version },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
  });
  await app.register(swaggerUi, { routePrefix: '/API' });

  // SSRF guard on registered addresses; the default policy when none is given.
  const networkPolicy = deps.networkPolicy ?? new NetworkPolicy();
  await app.register(roomRoutes, { rooms: deps.rooms, networkPolicy });
  await app.register(serverRoutes, { rooms: deps.rooms, ...(deps.http ? { http: deps.http } : {}) });
  if (deps.http) await app.register(backendRoutes, { http: deps.http, networkPolicy });
  await app.register(turnRoutes, { turn: deps.turn, credentialTokens: deps.turnCredentialTokens, networkPolicy });
  if (deps.origins) await app.register(originRoutes, { origins: deps.origins, networkPolicy });
  await app.register(systemRoutes, { store: deps.store, metrics: deps.metrics, version: deps.version });
  const pools = [...DASHBOARD_POOLS, ...(deps.http?.pools ?? [])];
  await app.register(poolRoutes, { store: deps.store, pools });
  const hub = new EventHub(deps.store, pools, deps.events, app.log);
  await app.register(eventRoutes, { hub });
  const { activity, history, stop } = dashboardFeeds(deps, pools, hub);
  await app.register(dashboardRoutes, { store: deps.store, activity, history, admin: poolAdmin(deps), ...(deps.dashboardDir ? { pageDir: deps.dashboardDir } : {}) });
  app.addHook('onClose', (_app, done) => {
    stop();
    history.stop();
    done();
  });
  return app as unknown as FastifyInstance;
}

/** The event log (fed by every store change, pushed on `/events`) and the charts' sampler. */
function dashboardFeeds(deps: ApiDeps, pools: readonly string[], hub: EventHub) {
  const { store } = deps;
  const log = new ActivityLog();
  for (const pool of pools) log.baseline(pool, store.listServers(pool), store.listPlacements(pool));
  const shown = new Set(pools);
  const unsubscribe = store.subscribe((event) => {
    if (!shown.has(event.pool)) return;
    if (event.type === 'resync') return log.baseline(event.pool, store.listServers(event.pool), store.listPlacements(event.pool));
    for (const entry of log.observe(event, (pool, id) => store.getServer(pool, id))) hub.publish('activity', entry);
  });
  const history = new StatsHistory(() => metricsTextOf(deps.metrics, CHART_METRICS), (sample) => hub.publish('stats', sample), deps.history, deps.logger);
  history.start();
  return { activity: log, history, stop: unsubscribe };
}

/** Each pool's drain and deregister, through its own service (the dashboard's buttons). */
function poolAdmin(deps: ApiDeps): PoolAdmin {
  const admin = new PoolAdmin(deps.store)
    .add(ROOMS_POOL, (id) => deps.rooms.deregister(id), (id, state) => deps.rooms.setAdminState(id, state))
    .add(TURN_POOL, (id) => deps.turn.deregister(id));
  if (deps.origins) admin.add(ORIGINS_POOL, (id) => deps.origins!.deregister(id));
  const http = deps.http;
  if (http) for (const pool of http.pools) admin.add(pool, (id) => http.remove(pool, id), (id, state) => http.setState(pool, id, state));
  return admin;
}
