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
import { eventRoutes, type EventsTuning } from './routes/events.js';
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
}

/** The pools the dashboard routes show (`GET /pools`, `GET /events`), in display order. */
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
  await app.register(poolRoutes, { store: deps.store, pools: DASHBOARD_POOLS });
  await app.register(eventRoutes, { store: deps.store, pools: DASHBOARD_POOLS, tuning: deps.events });
  return app as unknown as FastifyInstance;
}
