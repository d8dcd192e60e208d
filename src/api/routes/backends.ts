import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { HttpPoolService } from '../../pools/http/service.js';
import { BackendEntrySchema } from '../../proxy/schema.js';
import type { NetworkPolicy } from '../../security/network-policy.js';
import { ErrorBody, ServerView, serverView, sortById } from '../schemas.js';

const errors = { 400: ErrorBody, 401: ErrorBody, 404: ErrorBody, 503: ErrorBody };
const BackendParams = Type.Object({ pool: Type.String({ pattern: '^[a-z][a-z0-9_-]{0,31}$' }), id: Type.String({ minLength: 1, maxLength: 128 }) });
const BackendList = Type.Object({ backends: Type.Array(Type.Intersect([ServerView, Type.Object({ pool: Type.String() })])) });
const withPool = (pool: string, s: Parameters<typeof serverView>[0]) => ({ ...serverView(s, 0), pool });

/** HTTP backends of the proxy's pools (seed 002): list, register, drain, make ready, remove. */
export const backendRoutes: FastifyPluginAsyncTypebox<{ http: HttpPoolService; networkPolicy: NetworkPolicy }> = async (app, { http, networkPolicy }) => {
  app.get(
    '/backends',
    { schema: { tags: ['backends'], summary: "The proxy's HTTP backends, every pool", querystring: Type.Object({ pool: Type.Optional(Type.String()) }), response: { 200: BackendList, 400: ErrorBody } } },
    async (req) => {
      const pool = req.query.pool;
      if (pool !== undefined) http.assertPool(pool);
      const list = http.list(pool);
      return { backends: list.sort((a, b) => (a.pool + a.server.id < b.pool + b.server.id ? -1 : 1)).map(({ pool, server }) => withPool(pool, server)) };
    },
  );

  app.post(
    '/backends',
    {
      config: { auth: true },
      schema: {
        tags: ['backends'],
        summary: 'Register an HTTP backend (again: its settings replace the earlier ones; the same address and settings keep its health and drain state, a new weight is applied in place); the pool health check decides when a new one takes traffic',
        body: BackendEntrySchema,
        response: { 200: Type.Intersect([ServerView, Type.Object({ pool: Type.String() })]), ...errors },
      },
    },
    async (req) => {
      await networkPolicy.assertAllowedHost(req.body.host, 'body.host');
      const server = await http.register(req.body);
      return withPool(req.body.pool ?? http.defaultPool, server);
    },
  );

  for (const [action, state, summary] of [
    ['drain', 'drain', 'Drain: no new requests, those under way and open WebSockets finish'],
    ['maint', 'maint', 'Maintenance: no new requests (HAProxy maint)'],
    ['ready', 'active', 'Back to normal after drain or maint'],
  ] as const) {
    app.post(
      `/backends/:pool/:id/${action}`,
      { config: { auth: true }, schema: { tags: ['backends'], summary, params: BackendParams, response: { 200: ServerView, ...errors } } },
      async (req) => serverView(await http.setState(req.params.pool, req.params.id, state), 0),
    );
  }

  app.delete(
    '/backends/:pool/:id',
    { config: { auth: true }, schema: { tags: ['backends'], summary: 'Remove a backend', params: BackendParams, response: { 200: ServerView, ...errors } } },
    async (req) => serverView(await http.remove(req.params.pool, req.params.id), 0),
  );
};

/** For GET /servers: the backends in the same listing as the media servers. */
export function backendServers(http: HttpPoolService | undefined) {
  return http ? sortById(http.list().map(({ server }) => server)) : [];
}
