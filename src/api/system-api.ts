import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { OriginService } from '../pools/origins/service.js';
import { NetworkPolicy } from '../security/network-policy.js';
import { bearerAuth } from './auth.js';
import { errorHandler, notFoundHandler } from './errors.js';
import { srsRegisterRoutes } from './routes/origins.js';
import { illFormedPath } from './well-formed.js';

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
  const app = Fastify({
    loggerInstance: deps.logger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 64 * 1024,
    return503OnClosing: true,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler(notFoundHandler);
  app.addHook('preValidation', (req, reply, done) => {
    const field = illFormedPath(req.body, 'body');
    if (field === undefined) return done();
    const reason = 'must be well-formed Unicode (a lone UTF-16 surrogate is not)';
    void reply.code(400).send({ error: 'bad_request', message: `${field} ${reason}`, field, reason });
  });
  if (deps.authToken !== undefined) app.addHook('onRequest', bearerAuth(deps.authToken));
  await app.register(srsRegisterRoutes, { origins: deps.origins, networkPolicy: deps.networkPolicy ?? new NetworkPolicy() });
  return app as unknown as FastifyInstance;
}
