import { Type, type Static } from 'typebox';

const Ms = (def: number, min = 1) => Type.Integer({ minimum: min, default: def });

/** One backend as seed 002's `config/backends.json` lists it, with Switchboard's optional extras. */
export const BackendEntrySchema = Type.Object(
  {
    host: Type.String({ minLength: 1, maxLength: 253 }),
    port: Type.Integer({ minimum: 1, maximum: 65535 }),
    /** Pool the backend serves (default `web`; seed 004's WebSocket servers go in `media`). */
    pool: Type.Optional(Type.String({ pattern: '^[a-z][a-z0-9_-]{0,31}$' })),
    id: Type.Optional(Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9._:@-]+$' })),
    /** Relative weight, on Switchboard's scale: 100 is a default server's; 0 takes no new requests. */
    weight: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000 })),
    maxconn: Type.Optional(Type.Integer({ minimum: 0 })),
    healthPath: Type.Optional(Type.String({ pattern: '^/[^?#\\s]*$', maxLength: 512 })),
    region: Type.Optional(Type.String({ maxLength: 64 })),
  },
  { additionalProperties: false },
);
export type BackendEntry = Static<typeof BackendEntrySchema>;

export const HTTP_POLICIES = ['round-robin', 'weighted-round-robin', 'least-connections', 'two-random-choices', 'consistent-hash'] as const;
export type HttpPolicyName = (typeof HTTP_POLICIES)[number];

/** A pool of HTTP backends: how it balances, checks and protects them (HAProxy's `backend`). */
export const HttpPoolSchema = Type.Object(
  {
    policy: Type.Enum([...HTTP_POLICIES], { default: 'round-robin' }),
    /** Consistent hashing's key: one of a header, a cookie or a query parameter. */
    hash: Type.Optional(
      Type.Object(
        {
          header: Type.Optional(Type.String({ minLength: 1 })),
          cookie: Type.Optional(Type.String({ minLength: 1 })),
          query: Type.Optional(Type.String({ minLength: 1 })),
          /** Bounded load: no backend takes more than loadFactor × the mean load. */
          loadFactor: Type.Number({ minimum: 1, default: 1.25 }),
        },
        { additionalProperties: false },
      ),
    ),
    /** HAProxy `cookie NAME insert indirect nocache`: the client is pinned to its backend. */
    sticky: Type.Optional(
      Type.Object(
        {
          cookie: Type.String({ minLength: 1, pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", default: 'SERVERID' }),
          secure: Type.Boolean({ default: false }),
          maxAgeSeconds: Type.Optional(Type.Integer({ minimum: 1 })),
        },
        { additionalProperties: false },
      ),
    ),
    /** Per-backend in-flight limit when the backend itself names none (0 = unlimited). */
    maxconn: Type.Integer({ minimum: 0, default: 0 }),
    /** Requests waiting for a backend under maxconn: at most `size`, each at most `timeoutMs`. */
    queue: Type.Object({ size: Type.Integer({ minimum: 0, default: 1024 }), timeoutMs: Ms(5_000) }, { additionalProperties: false, default: {} }),
    /** A backend back from down ramps its weight up over this (HAProxy `slowstart`); 0 = off. */
    slowStartMs: Type.Integer({ minimum: 0, default: 0 }),
    healthCheck: Type.Object(
      {
        path: Type.String({ pattern: '^/[^?#\\s]*$', maxLength: 512, default: '/' }),
        /** Healthy status codes, as `200-399` or `200,204`. */
        expectStatus: Type.String({ pattern: '^[1-5][0-9]{2}(-[1-5][0-9]{2})?(,[1-5][0-9]{2}(-[1-5][0-9]{2})?)*$', default: '200-399' }),
        /** Falls back to health.intervalMs (env HEALTH_CHECK_INTERVAL). */
        intervalMs: Type.Optional(Type.Integer({ minimum: 100 })),
        timeoutMs: Type.Optional(Type.Integer({ minimum: 10 })),
        rise: Type.Integer({ minimum: 1, default: 2 }),
        fall: Type.Integer({ minimum: 1, default: 3 }),
      },
      { additionalProperties: false, default: {} },
    ),
    /** Passive outlier ejection (Envoy): consecutive 5xx or connect failures eject a backend. */
    outlier: Type.Object(
      {
        consecutiveFailures: Type.Integer({ minimum: 0, default: 5, description: '0 turns ejection off.' }),
        baseEjectionMs: Ms(10_000),
        maxEjectionMs: Ms(300_000),
        maxEjectionPercent: Type.Integer({ minimum: 0, maximum: 100, default: 50 }),
        panicThresholdPercent: Type.Integer({ minimum: 0, maximum: 100, default: 50 }),
      },
      { additionalProperties: false, default: {} },
    ),
    /**
     * Seed 002's Redis-backed round-robin index: with the Redis store and `round-robin`, every
     * worker and instance takes the next position from one counter (one INCR per request), so the
     * rotation is global, not per process. Costs a Redis round trip per request (docs/benchmarks.md).
     */
    sharedRoundRobin: Type.Boolean({ default: false }),
    /** Tries on another backend after a connect failure, for idempotent requests without a body. */
    retries: Type.Integer({ minimum: 0, maximum: 5, default: 2 }),
  },
  { additionalProperties: false, default: {} },
);
export type HttpPoolConfig = Static<typeof HttpPoolSchema>;

/** A routing rule (HAProxy ACL + use_backend): every `match` given must hold; first rule wins. */
export const RouteSchema = Type.Object(
  {
    name: Type.Optional(Type.String()),
    match: Type.Object(
      {
        /** Exact host names (port ignored) or `*.example.com` suffixes. */
        host: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })),
        pathPrefix: Type.Optional(Type.String({ pattern: '^/' })),
        /** A header present (no value) or equal to `value` (case-insensitive). */
        header: Type.Optional(Type.Object({ name: Type.String({ minLength: 1 }), value: Type.Optional(Type.String()) }, { additionalProperties: false })),
        /** Seed 004: `Upgrade: websocket` or a `Sec-WebSocket-Key` header. */
        websocket: Type.Optional(Type.Boolean()),
      },
      { additionalProperties: false, default: {} },
    ),
    /** The pool that serves matching requests. */
    pool: Type.Optional(Type.String()),
    /**
     * Room routing: the roomId is read from a path segment (1-based, after the prefix-free path)
     * or a query parameter, and the request goes to the server holding the room in the rooms pool.
     */
    room: Type.Optional(
      Type.Object(
        {
          pathSegment: Type.Optional(Type.Integer({ minimum: 1 })),
          query: Type.Optional(Type.String({ minLength: 1 })),
        },
        { additionalProperties: false },
      ),
    ),
    /** Requests per second per client IP on this route (token bucket; burst defaults to rate). */
    rateLimit: Type.Optional(Type.Object({ rate: Type.Number({ exclusiveMinimum: 0 }), burst: Type.Optional(Type.Integer({ minimum: 1 })) }, { additionalProperties: false })),
  },
  { additionalProperties: false },
);
export type RouteConfig = Static<typeof RouteSchema>;

/** One certificate for TLS termination; SNI picks it by `servernames`, the first is the default. */
const CertSchema = Type.Object(
  {
    cert: Type.String({ minLength: 1, description: 'PEM file.' }),
    key: Type.String({ minLength: 1, description: 'PEM file.' }),
    servernames: Type.Optional(Type.Array(Type.String({ minLength: 1 }))),
  },
  { additionalProperties: false },
);

/**
 * The HTTP/WebSocket data plane (issue 14, seed 002 and seed 004's front end). Runs when backends
 * are configured (here, `config/backends.json`, `--backends`) or `PORT` is set.
 */
export const ProxyConfigSchema = Type.Object(
  {
    enabled: Type.Optional(Type.Boolean()),
    host: Type.String({ default: '0.0.0.0' }),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 8080, description: 'Proxy port (env PORT).' }),
    /**
     * Worker processes (env WORKER_COUNT); 0, the default, = one per core (seed 002). 1 = the proxy
     * runs in the main process.
     */
    workers: Type.Integer({ minimum: 0, maximum: 64, default: 0 }),
    /** Static backends (seed 002's backends.json entries). */
    backends: Type.Array(BackendEntrySchema, { default: [] }),
    pools: Type.Record(Type.String({ pattern: '^[a-z][a-z0-9_-]{0,31}$' }), HttpPoolSchema, { default: {} }),
    routes: Type.Array(RouteSchema, { default: [] }),
    /** Pool for requests no route matches. */
    defaultPool: Type.String({ default: 'web' }),
    limits: Type.Object(
      {
        maxHeaderBytes: Type.Integer({ minimum: 1024, maximum: 1_048_576, default: 16_384 }),
        maxBodyBytes: Type.Integer({ minimum: 0, default: 10 * 1024 * 1024, description: '0 = unlimited.' }),
        /** Time to receive a whole request head (HAProxy `timeout http-request`). */
        headersTimeoutMs: Ms(10_000),
        /** An idle keep-alive client connection is closed after this (`timeout http-keep-alive`). */
        keepAliveTimeoutMs: Ms(60_000),
        /** Client silence while sending a body (`timeout client`). */
        clientTimeoutMs: Ms(60_000),
        connectTimeoutMs: Ms(5_000),
        /** Backend silence while answering (`timeout server`): 504 before the head. */
        serverTimeoutMs: Ms(60_000),
        /** An idle WebSocket (no frame either way) is closed after this (`timeout tunnel`). */
        tunnelTimeoutMs: Ms(3_600_000),
        /** Idle keep-alive connections kept per backend. */
        maxIdlePerBackend: Type.Integer({ minimum: 0, default: 256 }),
        maxConnections: Type.Integer({ minimum: 1, default: 10_000, description: 'Client connections at once per process.' }),
      },
      { additionalProperties: false, default: {} },
    ),
    /** Per-client-IP limit on every request (token bucket); routes may add their own. */
    rateLimit: Type.Object(
      {
        perIp: Type.Optional(Type.Object({ rate: Type.Number({ exclusiveMinimum: 0 }), burst: Type.Optional(Type.Integer({ minimum: 1 })) }, { additionalProperties: false })),
        /** `redis`: buckets shared by every worker and instance (needs the Redis store). */
        store: Type.Enum(['local', 'redis'], { default: 'local' }),
      },
      { additionalProperties: false, default: {} },
    ),
    tls: Type.Optional(
      Type.Object(
        {
          port: Type.Integer({ minimum: 0, maximum: 65535, default: 8443 }),
          certs: Type.Array(CertSchema, { minItems: 1 }),
        },
        { additionalProperties: false },
      ),
    ),
    accessLog: Type.Object(
      {
        /** Share of requests logged (0..1); errors (5xx, proxy errors) are always logged. */
        sampleRate: Type.Number({ minimum: 0, maximum: 1, default: 0 }),
      },
      { additionalProperties: false, default: {} },
    ),
  },
  { additionalProperties: false, default: {} },
);
export type ProxyConfig = Static<typeof ProxyConfigSchema>;
