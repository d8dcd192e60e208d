import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { ActivityLog } from '../../dashboard/activity.js';
import type { StatsHistory } from '../../dashboard/history.js';
import { AppError } from '../../errors.js';
import type { PoolAdmin } from '../../pools/admin.js';
import type { StateStore } from '../../store/store.js';
import { ErrorBody, Id, ServerView, serverView } from '../schemas.js';

/** Where `npm run build` puts the page (Vite; web/dashboard/), from the package root. */
export const DASHBOARD_DIR = fileURLToPath(new URL('../../../dist/web/dashboard/', import.meta.url));

const Activity = Type.Object({
  at: Type.String({ format: 'date-time' }),
  pool: Type.String(),
  serverId: Type.Optional(Type.String()),
  placementId: Type.Optional(Type.String()),
  kind: Type.Union([Type.Literal('registered'), Type.Literal('removed'), Type.Literal('health'), Type.Literal('admin'), Type.Literal('placed'), Type.Literal('released')]),
  level: Type.Union([Type.Literal('info'), Type.Literal('warn'), Type.Literal('error')]),
  message: Type.String(),
});

const Rates = Type.Record(Type.String(), Type.Number());
const Sample = Type.Object({
  at: Type.String({ format: 'date-time' }),
  placementsPerSecond: Rates,
  failuresPerSecond: Rates,
  probeLatencyMs: Type.Object({ p50: Type.Union([Type.Number(), Type.Null()]), p99: Type.Union([Type.Number(), Type.Null()]) }),
  proxy: Type.Union([Type.Object({ requestsPerSecond: Type.Number(), p99Ms: Type.Union([Type.Number(), Type.Null()]) }), Type.Null()]),
});

const PoolServerParams = Type.Object({
  pool: Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z0-9][a-z0-9_-]*$', description: 'Pool name: rooms, turn, origins, or an HTTP pool.' }),
  id: Id('Server id.'),
});
const errors = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 503: ErrorBody };

/**
 * The dashboard: the page (built by Vite into dist/web/dashboard, served here; no CDN), its event
 * log (`GET /activity`), its charts (`GET /stats/history`) and its buttons (drain, undrain,
 * deregister in any pool; writes like every other, behind the bearer token when one is set).
 */
export const dashboardRoutes: FastifyPluginAsyncTypebox<{ store: StateStore; activity: ActivityLog; history: StatsHistory; admin: PoolAdmin; pageDir?: string }> = async (
  app,
  { store, activity, history, admin, pageDir = DASHBOARD_DIR },
) => {
  if (existsSync(`${pageDir}/index.html`)) {
    await app.register(fastifyStatic, {
      root: pageDir,
      prefix: '/dashboard/',
      // @fastify/swagger-ui registered the plugin already; one reply decorator is enough.
      decorateReply: false,
      setHeaders(res, path) {
        // Vite names assets by content hash: cache them for good; the page itself never.
        res.header('cache-control', path.includes('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache');
        res.header('x-content-type-options', 'nosniff');
        // The page has buttons that drain servers: no framing by another site, no foreign code.
        res.header('x-frame-options', 'DENY');
        res.header('content-security-policy', "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'");
      },
    });
  } else {
    app.get('/dashboard/*', { schema: { hide: true } }, async () => {
      throw new AppError(503, 'dashboard_not_built', `the dashboard page is not built (${pageDir}): run npm run build`);
    });
  }
  app.get('/dashboard', { schema: { hide: true } }, async (_req, reply) => reply.redirect('/dashboard/'));

  app.get(
    '/activity',
    {
      schema: {
        tags: ['dashboard'],
        summary: 'The event log: registrations, removals, health flips, drains, placements made, released, lost and placed again (oldest first)',
        description: 'Also pushed live on `GET /events` as `activity` events. Derived by each instance from the store’s changes, so every instance sharing a Redis tells the same story from its own start on.',
        querystring: Type.Object({ limit: Type.Optional(Type.String({ pattern: '^(500|[1-4][0-9]{2}|[1-9][0-9]?)$', description: 'Entries, 1 to 500 (default 200).' })) }),
        response: { 200: Type.Object({ entries: Type.Array(Activity) }), 400: ErrorBody },
      },
    },
    async (req) => ({ entries: activity.entries(req.query.limit === undefined ? 200 : Number(req.query.limit)) }),
  );

  app.get(
    '/stats/history',
    {
      schema: {
        tags: ['dashboard'],
        summary: 'The charts of the last minutes: placements/s by pool, failures/s by reason, probe latency, proxy requests/s and p99',
        description: 'One sample every `intervalSeconds`, from this instance’s own metrics (its proxy workers’ included); new samples are pushed on `GET /events` as `stats` events. For the whole fleet, use Prometheus (deploy/).',
        response: { 200: Type.Object({ intervalSeconds: Type.Number(), samples: Type.Array(Sample) }) },
      },
    },
    async () => ({ intervalSeconds: history.options.intervalMs / 1000, samples: history.samples() }),
  );

  const operations = (pool: string) => {
    const ops = admin.for(pool);
    if (!ops) throw new AppError(404, 'unknown_pool', `pool: no pool ${pool}; pools: ${admin.pools.join(', ')}`, { field: 'pool', reason: 'unknown pool' });
    return ops;
  };
  const count = (pool: string, id: string) => store.countPlacements(pool, id);
  // The buttons' routes act on a bare POST/DELETE: a page on another site must not be able to
  // press them through an operator's browser (CSRF; with no token configured nothing else would
  // stop it). Browsers send Origin with every cross-origin POST and DELETE; scripts send none.
  const sameOrigin = async (req: FastifyRequest) => {
    const origin = req.headers.origin;
    if (origin === undefined) return;
    let host: string | undefined;
    try {
      host = new URL(origin).host;
    } catch {
      host = undefined;
    }
    if (host === undefined || host !== req.headers.host) {
      throw new AppError(403, 'cross_origin', `origin: ${origin} is not this service (${req.headers.host ?? 'no host'}); the dashboard's actions are taken from its own page`, { field: 'origin', reason: 'cross-origin request' });
    }
  };
  // Every write of this plugin is a button's (its other routes are reads).
  app.addHook('preHandler', async (req) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') await sameOrigin(req);
  });

  app.post(
    '/pools/:pool/servers/:id/drain',
    {
      config: { auth: true },
      schema: { tags: ['dashboard'], summary: 'Drain a server of any pool: no new work, what it has stays', params: PoolServerParams, response: { 200: ServerView, ...errors } },
    },
    async (req) => serverView(await operations(req.params.pool).setAdminState(req.params.id, 'drain'), count(req.params.pool, req.params.id)),
  );
  app.delete(
    '/pools/:pool/servers/:id/drain',
    {
      config: { auth: true },
      schema: { tags: ['dashboard'], summary: 'Undrain a server of any pool (also ends maint): it takes new work again', params: PoolServerParams, response: { 200: ServerView, ...errors } },
    },
    async (req) => serverView(await operations(req.params.pool).setAdminState(req.params.id, 'active'), count(req.params.pool, req.params.id)),
  );
  app.delete(
    '/pools/:pool/servers/:id',
    {
      config: { auth: true },
      schema: { tags: ['dashboard'], summary: 'Deregister a server of any pool, the pool’s way (rooms: released and their owners notified)', params: PoolServerParams, response: { 200: ServerView, ...errors } },
    },
    async (req) => serverView(await operations(req.params.pool).deregister(req.params.id), 0),
  );
};
