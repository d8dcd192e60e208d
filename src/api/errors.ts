import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { AppError } from '../errors.js';
import { StoreUnavailableError } from '../store/store.js';

interface ValidationIssue {
  instancePath?: string;
  message?: string;
  keyword?: string;
  params?: Record<string, unknown>;
}

/** `body.workers`, `params.roomId`, `query.user`, ...: the input a validation error is about. */
function fieldOf(context: string | undefined, issue: ValidationIssue): string {
  if (context === 'querystring') context = 'query'; // as clients write it (Fastify's name is querystring)
  const parts = (issue.instancePath ?? '').split('/').filter(Boolean);
  const missing = issue.params?.missingProperty;
  if (typeof missing === 'string') parts.push(missing);
  const additional = issue.params?.additionalProperty;
  if (typeof additional === 'string') parts.push(additional);
  return [context ?? 'body', ...parts].join('.');
}

/**
 * Every error becomes a JSON body `{error, message, field?, reason?}`. Bad input is a 4xx naming
 * the field; a store outage is a 503; anything unexpected is logged and answered 500 without
 * internals.
 */
/** What a refused pattern means, for fields whose pattern says little to a reader. */
const patternReasons: Record<string, string> = {
  'body.healthPath': 'must be a path: starting with one /, no ?, #, \\, whitespace or .. segments',
  'body.agentSend': 'must be one line of printable ASCII',
  'body.serverId': 'must be 1-128 of A-Z a-z 0-9 . _ ~ : @ -',
  'body.roomId': 'must be 1-128 of A-Z a-z 0-9 . _ ~ : @ -',
  'params.roomId': 'must be 1-128 of A-Z a-z 0-9 . _ ~ : @ -',
  'params.id': 'must be 1-128 of A-Z a-z 0-9 . _ ~ : @ -',
};

export function errorHandler(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  if (error.validation && error.validation.length > 0) {
    const issue = error.validation[0] as ValidationIssue;
    const field = fieldOf(error.validationContext, issue);
    const reason = issue.keyword === 'required' ? 'is required' : issue.keyword === 'pattern' ? (patternReasons[field] ?? issue.message ?? 'is invalid') : (issue.message ?? 'is invalid');
    return reply.code(400).send({ error: 'bad_request', message: `${field} ${reason}`, field, reason });
  }
  if (error instanceof AppError) {
    return reply.code(error.statusCode).send({ error: error.code, message: error.message, ...error.details });
  }
  if (error instanceof StoreUnavailableError) {
    return reply.code(503).header('retry-after', '1').send({ error: 'store_unavailable', message: error.message });
  }
  const status = error.statusCode ?? 500;
  if (status >= 400 && status < 500) {
    const code = (error.code ?? 'bad_request').replace(/^FST_ERR_/, '').toLowerCase();
    return reply.code(status).send({ error: code, message: error.message });
  }
  request.log.error({ err: error }, 'unexpected error');
  return reply.code(500).send({ error: 'internal', message: 'internal error; see the Switchboard log' });
}

export function notFoundHandler(request: FastifyRequest, reply: FastifyReply) {
  return reply.code(404).send({ error: 'not_found', message: `no route ${request.method} ${request.url.split('?')[0]}` });
}
