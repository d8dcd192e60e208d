import { Type, type Static } from 'typebox';
import { policyNames } from '../core/policies/index.js';
import { HaproxyConfigSchema } from '../haproxy/schema.js';
import { ProxyConfigSchema } from '../proxy/schema.js';

const HostPort = Type.Object({ host: Type.String({ minLength: 1 }), port: Type.Integer({ minimum: 1, maximum: 65535 }) }, { additionalProperties: false });

const Ms = (def: number, min = 1) => Type.Integer({ minimum: min, default: def });

/**
 * A health-check path: absolute, and only a path — no `?`, `#`, backslash, whitespace, `..`
 * segment, or a leading `//` (which a URL parser would read as another host).
 */
export const HEALTH_PATH_PATTERN = '^(?!//)(?!.*/(?:\\.|%2[eE]){2}(?:/|$))/[^?#\\\\\\s]*$';

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
        path: Type.String({ pattern: HEALTH_PATH_PATTERN, maxLength: 512, default: '/health', description: 'Default HTTP probe path (env HEALTH_CHECK_PATH).' }),
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
        /**
         * Added to createTimeoutMs to make a pending placement's deadline: past it, the instance
         * creating the room is presumed dead (killed, cut off from Redis) and any instance may
         * reclaim the room and its units.
         */
        pendingGraceMs: Type.Integer({ minimum: 0, default: 5_000 }),
        /** Servers tried for one room before giving up. */
        maxAttempts: Type.Integer({ minimum: 1, default: 3 }),
        /** Timeout of a room-lost notification POST. */
        notifyTimeoutMs: Ms(5_000),
      },
      { additionalProperties: false, default: {} },
    ),
    security: Type.Object(
      {
        /**
         * CIDR networks Switchboard may connect to (media servers, health probes, TURN probes,
         * webhooks). Unset: anywhere but link-local, metadata, multicast and reserved addresses.
         */
        allowedNetworks: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 1024 })),
      },
      { additionalProperties: false, default: {} },
    ),
    turn: Type.Object(
      {
        /** TURN servers from config; more can register through the API. */
        servers: Type.Array(
          Type.Object(
            {
              /** Public address or name: what clients are told. */
              host: Type.String({ minLength: 1, maxLength: 253 }),
              /** Private address: what is probed and matched against metrics. */
              privateAddress: Type.Optional(Type.String({ minLength: 1, maxLength: 253 })),
              port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
              tlsPort: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
              region: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
            },
            { additionalProperties: false },
          ),
          { default: [] },
        ),
        healthCheck: Type.Object(
          {
            intervalSeconds: Type.Number({ exclusiveMinimum: 0, default: 15 }),
            timeoutSeconds: Type.Number({ exclusiveMinimum: 0, default: 5 }),
            successThreshold: Type.Integer({ minimum: 1, default: 3 }),
            failureThreshold: Type.Integer({ minimum: 1, default: 3 }),
            /** Port probed; the server's TURN port (turn.port) when unset. */
            port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
            /** tcp: connect (the original); stun: a STUN Binding over UDP; tls: a TLS handshake. */
            protocol: Type.Enum(['tcp', 'stun', 'tls'], { default: 'tcp' }),
          },
          { additionalProperties: false, default: {} },
        ),
        loadBalancer: Type.Object(
          {
            algorithm: Type.Enum(['random', 'metrics', 'least-allocations'], { default: 'random' }),
            intervalMinutes: Type.Number({ exclusiveMinimum: 0, default: 5 }),
            durationMinutes: Type.Number({ exclusiveMinimum: 0, default: 5 }),
            timeoutSeconds: Type.Number({ exclusiveMinimum: 0, default: 5 }),
            /** query_range step; the original uses 60 s. */
            stepSeconds: Type.Number({ exclusiveMinimum: 0, default: 60 }),
            /** Series with fewer points than this are dropped as too little data. */
            minPoints: Type.Integer({ minimum: 1, default: 2 }),
            prometheus: Type.Object(
              {
                endpoint: Type.Optional(Type.String({ minLength: 1 })),
                port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
                query: Type.String({ default: 'sum(node_netstat_Tcp_CurrEstab{ip=~"%s"}) by(ip)' }),
              },
              { additionalProperties: false, default: {} },
            ),
          },
          { additionalProperties: false, default: {} },
        ),
        /** TURN REST API secret (coturn static-auth-secret); a list rotates: the first signs. */
        secret: Type.Optional(Type.Union([Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })])),
        credentialTtlSeconds: Type.Integer({ minimum: 60, default: 86_400 }),
        /**
         * GET /turn/ice-servers hands out working TURN credentials: with this true (the default) it
         * needs `Authorization: Bearer <auth.token or credentialsToken>` whenever either is set.
         * With no token at all it stays open (development only). False: always open.
         */
        credentialsRequireAuth: Type.Boolean({ default: true, description: 'GET /turn/ice-servers needs a bearer token when one is configured (env TURN_CREDENTIALS_REQUIRE_AUTH).' }),
        /** A read-only token for GET /turn/ice-servers alone (for web clients), besides auth.token. */
        credentialsToken: Type.Optional(Type.String({ minLength: 8, description: 'Bearer token accepted by GET /turn/ice-servers (env TURN_CREDENTIALS_TOKEN).' })),
        /** The TURN port (answers, and probes unless healthCheck.port is set) when a server names none. */
        port: Type.Integer({ minimum: 1, maximum: 65535, default: 3478 }),
        tlsPort: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
      },
      { additionalProperties: false, default: {} },
    ),
    /** Streaming origins (seed 003, src/pools/origins/): SRS-compatible registration. */
    origins: Type.Object(
      {
        /**
         * The system API listener (SRS's proxy's PROXY_SYSTEM_API; SRS's default is 12025): only
         * `POST /api/v1/srs/register`. Not started when unset; the API port serves the route always.
         */
        systemApiPort: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, description: 'System API port (env PROXY_SYSTEM_API); none when unset.' })),
        /** An origin not registered (or heartbeated) within this is shown unhealthy (SRS: 300 s). */
        aliveSeconds: Type.Number({ exclusiveMinimum: 0, maximum: 86_400, default: 300 }),
        /** The media listeners, as SRS's proxy names them; each starts when its port is set. */
        rtmpPort: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, description: 'RTMP (env PROXY_RTMP_SERVER; SRS proxy: 11935).' })),
        httpPort: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, description: 'HTTP-FLV, HTTP-TS, HLS (env PROXY_HTTP_SERVER; SRS proxy: 18080).' })),
        httpApiPort: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, description: 'WHIP/WHEP (env PROXY_HTTP_API; SRS proxy: 11985).' })),
        webrtcPort: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, description: 'WebRTC over UDP (env PROXY_WEBRTC_SERVER; SRS proxy: 18000).' })),
        /** SRT (env PROXY_SRT_SERVER) is not proxied yet: setting it logs a warning and starts nothing. */
        srtPort: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
        /** The address WebRTC clients reach Switchboard's UDP port at, put in SDP answers (env CANDIDATE, as SRS). */
        webrtcCandidate: Type.Optional(Type.String({ minLength: 1 })),
        /** HLS and WebRTC session indexes live this long after their last use (SRS: 120 s). */
        sessionTtlSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400, description: 'Default 120.' })),
      },
      { additionalProperties: false, default: {} },
    ),
    /** The HTTP/WebSocket data plane (seed 002, seed 004's front end; src/proxy/schema.ts). */
    proxy: ProxyConfigSchema,
    /** HAProxy mode: Switchboard drives HAProxy as its data plane (src/haproxy/schema.ts). */
    haproxy: HaproxyConfigSchema,
    /**
     * `switchboard agent`'s section (src/agent/config.ts validates it when the agent starts), so
     * one file can configure both; `serve` ignores it.
     */
    agent: Type.Optional(Type.Unknown()),
  },
  { additionalProperties: false },
);

export type Config = Static<typeof ConfigSchema>;
