import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { LogController } from 'fastify';
import type { Logger } from 'pino';
import { illFormedPath } from '../core/well-formed.js';
import { bearerAuth } from './auth.js';
import { errorHandler, notFoundHandler } from './errors.js';

/**
 * A Fastify app with the guards every Switchboard listener has (the API, SRS's system API): body
 * limit, strict validation, JSON errors, strings refused unless well-formed Unicode, and the
 * bearer token on routes marked `config: { auth: true }` when a token is configured.
 */
export function createApiBase(opts: { logger: Logger; authToken?: string | undefined }) {
  const app = Fastify({
    loggerInstance: opts.logger,
    // Per-request log lines cost more than a placement at load; errors are still logged.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 64 * 1024,
    return503OnClosing: true,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.setErrorHandler(errorHandler);
  // Before any schema: refuse strings that are not well-formed Unicode, wherever they are.
  // (A callback hook, not an async one: no promise per request on the placement hot path.)
  app.addHook('preValidation', (req, reply, done) => {
    const field = illFormedPath(req.body, 'body') ?? illFormedPath(req.query, 'query') ?? illFormedPath(req.params, 'params');
    if (field === undefined) return done();
    const reason = 'must be well-formed Unicode (a lone UTF-16 surrogate is not)';
    void reply.code(400).send({ error: 'bad_request', message: `${field} ${reason}`, field, reason });
  });
  app.setNotFoundHandler(notFoundHandler);
  // Only with a token configured: an open instance pays nothing per request for it.
  if (opts.authToken !== undefined) app.addHook('onRequest', bearerAuth(opts.authToken));
  return app;
}
