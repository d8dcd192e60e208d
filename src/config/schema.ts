import { Type, type Static } from 'typebox';
import { policyNames } from '../core/policies/index.js';

const HostPort = Type.Object({ host: Type.String({ minLength: 1 }), port: Type.Integer({ minimum: 1, maximum: 65535 }) }, { additionalProperties: false });

const Ms = (def: number, min = 1) => Type.Integer({ minimum: min, default: def });

/**
 * Switchboard's configuration: the YAML file's shape, with defaults. Environment variables with
 * the seed projects' names override it (see load.ts); every value is checked at start.
 */
export const ConfigSchema = Type.Object(
  {
    server: Type.Object(
      {
        host: Type.String({ default: '0.0.0.0', description: 'Address the API listens on.' }),
        port: Type.Integer({ minimum: 0, maximum: 65535, default: 3001, description: 'API port (env APP_PORT).' }),
        /** How long a graceful shutdown waits for in-flight requests. */
        shutdownTimeoutMs: Ms(10_000),
      },
      { additionalProperties: false, default: {} },
    ),
    logLevel: Type.Enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
      default: 'info',
      description: 'pino level (env LOG_LEVEL; 0-3 also accepted).',
    }),
    auth: Type.Object(
      {
        token: Type.Optional(Type.String({ minLength: 8, description: 'Bearer token required on every write (env AUTH_TOKEN).' })),
      },
      { additionalProperties: false, default: {} },
    ),
    store: Type.Object(
      {
        type: Type.Enum(['memory', 'redis'], { default: 'memory' }),
        redis: Type.Object(
          {
            url: Type.Optional(Type.String({ pattern: '^rediss?://', description: 'Standalone Redis (env REDIS_URL).' })),
            sentinel: Type.Optional(
              Type.Object({ name: Type.String({ minLength: 1 }), sentinels: Type.Array(HostPort, { minItems: 1 }) }, { additionalProperties: false }),
            ),
            cluster: Type.Optional(Type.Object({ nodes: Type.Array(HostPort, { minItems: 1 }) }, { additionalProperties: false })),
            password: Type.Optional(Type.String()),
            db: Type.Optional(Type.Integer({ minimum: 0 })),
            prefix: Type.String({ default: 'sb', pattern: '^[A-Za-z0-9_.-]+$' }),
          },
          { additionalProperties: false, default: {} },
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    health: Type.Object(
      {
        intervalMs: Type.Integer({ minimum: 100, default: 30_000, description: 'Probe interval (env HEALTH_CHECK_INTERVAL).' }),
        timeoutMs: Type.Integer({ minimum: 10, default: 5_000, description: 'Probe timeout (env HEALTH_CHECK_TIMEOUT).' }),
        path: Type.String({ pattern: '^/', default: '/health', description: 'Default HTTP probe path (env HEALTH_CHECK_PATH).' }),
        successThreshold: Type.Integer({ minimum: 1, default: 1 }),
        failureThreshold: Type.Integer({ minimum: 1, default: 1 }),
        /** Placements on a server unhealthy for longer than this are released and reported lost. */
        lostAfterMs: Type.Integer({ minimum: 0, default: 60_000 }),
        /** Probes running at once per instance. */
        concurrency: Type.Integer({ minimum: 1, default: 64 }),
      },
      { additionalProperties: false, default: {} },
    ),
    rooms: Type.Object(
      {
        policy: Type.Enum(policyNames, { default: 'most-free-capacity' }),
        consumersPerWorker: Type.Integer({ minimum: 1, default: 500, description: 'Capacity of one mediasoup worker, in consumers.' }),
        /** Streams each peer sends and each other peer consumes (audio + video = 2). */
        consumersPerPeerPair: Type.Integer({ minimum: 1, default: 2 }),
        defaultMaxPeerCount: Type.Integer({ minimum: 2, default: 2 }),
        /** Timeout of the media server's `POST /rooms/:roomId`. */
        createTimeoutMs: Ms(5_000),
        /** Servers tried for one room before giving up. */
        maxAttempts: Type.Integer({ minimum: 1, default: 3 }),
        /** Timeout of a room-lost notification POST. */
        notifyTimeoutMs: Ms(5_000),
      },
      { additionalProperties: false, default: {} },
    ),
  },
  { additionalProperties: false },
);

export type Config = Static<typeof ConfigSchema>;
