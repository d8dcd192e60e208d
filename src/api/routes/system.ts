import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { metricsText, type Metrics } from '../../metrics/registry.js';
import type { StateStore } from '../../store/store.js';

/** The instance itself: liveness and metrics. */
export const systemRoutes: FastifyPluginAsyncTypebox<{ store: StateStore; metrics: Metrics; version: string }> = async (app, { store, metrics, version }) => {
  const started = Date.now();
  app.get(
    '/healthz',
    {
      schema: {
        tags: ['system'],
        summary: 'This instance: ok, or degraded while its state store refuses writes (reads still work)',
        response: {
          200: Type.Object({ status: Type.String(), store: Type.String(), storeAvailable: Type.Boolean(), version: Type.String(), uptimeSeconds: Type.Number() }),
        },
      },
    },
    async () => ({
      status: store.available() ? 'ok' : 'degraded',
      store: store.kind,
      storeAvailable: store.available(),
      version,
      uptimeSeconds: Math.round((Date.now() - started) / 1000),
    }),
  );

  app.get('/metrics', { schema: { tags: ['system'], summary: 'Prometheus metrics' } }, async (_req, reply) => {
    reply.header('content-type', metrics.registry.contentType);
    return metricsText(metrics);
  });
};
