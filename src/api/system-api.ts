import type { FastifyInstance } from 'fastify';
import { createApiBase } from './base.js';
import type { Logger } from 'pino';
import type { OriginService } from '../pools/origins/service.js';
import { NetworkPolicy } from '../security/network-policy.js';
import { srsRegisterRoutes } from './routes/origins.js';

export interface SystemApiDeps {
  origins: OriginService;
  logger: Logger;
  authToken?: string;
  networkPolicy?: NetworkPolicy;
}

/**
 * SRS's proxy "system API" (seed 003, `PROXY_SYSTEM_API`, SRS's default port 12025): a second,
 * small listener with only `POST /api/v1/srs/register`, sharing the main API's services, so SRS
 * origins can point their `heartbeat` at it unchanged. Same guards as the API port: bearer token
 * when AUTH_TOKEN is set, well-formed strings, the SSRF guard, JSON errors.
 */
export async function buildSystemApi(deps: SystemApiDeps): Promise<FastifyInstance> {
  const app = createApiBase({ logger: deps.logger, authToken: deps.authToken });
  await app.register(srsRegisterRoutes, { origins: deps.origins, networkPolicy: deps.networkPolicy ?? new NetworkPolicy() });
  return app as unknown as FastifyInstance;
}
