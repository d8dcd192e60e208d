import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Type, type Static } from 'typebox';

const Port = () => Type.Integer({ minimum: 1, maximum: 65535 });

/**
 * The `haproxy:` configuration section (HAProxy mode, issue 15 item 6): Switchboard renders an
 * haproxy.cfg in seed 004's layout, starts HAProxy (or attaches to a running one) and keeps it in
 * step with its view through the Runtime API.
 */
export const HaproxyConfigSchema = Type.Object(
  {
    /** Drive HAProxy (`switchboard serve --data-plane haproxy` or `switchboard haproxy` set it). */
    enabled: Type.Boolean({ default: false, description: 'Run with HAProxy as the data plane (serve --data-plane haproxy).' }),
    /** The haproxy binary started in managed mode. */
    binary: Type.String({ minLength: 1, default: 'haproxy' }),
    /** Where the managed mode writes haproxy.cfg, the room map and the stats socket. */
    runDir: Type.String({ minLength: 1, default: join(tmpdir(), 'switchboard-haproxy') }),
    /**
     * Runtime API address of the managed HAProxy: a unix socket path, or `ipv4@127.0.0.1:9999`.
     * Default: `<runDir>/admin.sock`.
     */
    socket: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    /**
     * Attach to an HAProxy started by someone else (running a configuration printed by
     * `switchboard haproxy-config`) instead of starting one.
     */
    attach: Type.Optional(
      Type.Object(
        {
          socket: Type.String({ minLength: 1, maxLength: 200 }),
          /** The room map file as HAProxy loaded it; found by its name (switchboard-rooms.map) when unset. */
          mapFile: Type.Optional(Type.String({ minLength: 1 })),
        },
        { additionalProperties: false },
      ),
    ),
    /** Global `maxconn`; unset: HAProxy derives it from the file-descriptor limit. */
    maxconn: Type.Optional(Type.Integer({ minimum: 1 })),
    /** A server-state file (`server-state-file` + `load-server-state-from-file global`): slots survive an HAProxy restart. */
    stateFile: Type.Optional(Type.String({ minLength: 1 })),
    frontend: Type.Object(
      {
        host: Type.String({ minLength: 1, default: '*' }),
        port: Type.Integer({ minimum: 1, maximum: 65535, default: 8443 }),
        /** TLS on the frontend: `bind ... ssl crt <pem>` (certificate chain and key in one PEM, as in the seed). */
        tls: Type.Optional(Type.Object({ crt: Type.String({ minLength: 1 }) }, { additionalProperties: false })),
      },
      { additionalProperties: false, default: {} },
    ),
    /** The web backend: everything that is not a WebSocket (e.g. nginx serving the web app). */
    web: Type.Object(
      {
        servers: Type.Array(Type.Object({ host: Type.String({ minLength: 1 }), port: Port() }, { additionalProperties: false }), { default: [] }),
        maxconn: Type.Integer({ minimum: 1, default: 100 }),
        check: Type.Boolean({ default: true }),
      },
      { additionalProperties: false, default: {} },
    ),
    /** The media backend: WebSockets to the rooms pool's servers. */
    media: Type.Object(
      {
        balance: Type.Enum(['roundrobin', 'leastconn'], { default: 'roundrobin' }),
        /** Per-server `maxconn`. */
        maxconn: Type.Integer({ minimum: 1, default: 100 }),
        /** Pre-allocated server slots (`server-template sb 1-<slots>`): the most servers HAProxy can hold. */
        slots: Type.Integer({ minimum: 1, maximum: 1000, default: 64 }),
        /** HAProxy's own TCP check of each server, besides Switchboard's probes. */
        check: Type.Boolean({ default: true }),
        checkIntervalMs: Type.Integer({ minimum: 100, default: 2_000 }),
        /** `agent-check agent-port N agent-inter Xs` on every slot (servers running `switchboard agent`). */
        agent: Type.Optional(
          Type.Object(
            {
              port: Type.Integer({ minimum: 1, maximum: 65535, default: 9707 }),
              interMs: Type.Integer({ minimum: 100, default: 5_000 }),
            },
            { additionalProperties: false },
          ),
        ),
        /** Cookie stickiness (`cookie SERVERID insert indirect nocache dynamic`). */
        cookie: Type.Boolean({ default: false }),
        /** Which of a server's addresses HAProxy connects to: its wsUrl (falling back to serviceUrl), or serviceUrl. */
        address: Type.Enum(['ws', 'service'], { default: 'ws' }),
      },
      { additionalProperties: false, default: {} },
    ),
    /** Where the room id is in a WebSocket request: a query parameter, or a path segment (1 = the first). */
    room: Type.Object(
      {
        source: Type.Enum(['query', 'path'], { default: 'query' }),
        param: Type.String({ pattern: '^[A-Za-z0-9_.-]+$', default: 'roomId' }),
        segment: Type.Integer({ minimum: 1, maximum: 32, default: 2 }),
      },
      { additionalProperties: false, default: {} },
    ),
    timeouts: Type.Object(
      {
        connectMs: Type.Integer({ minimum: 1, default: 5_000 }),
        clientMs: Type.Integer({ minimum: 1, default: 30_000 }),
        serverMs: Type.Integer({ minimum: 1, default: 30_000 }),
        /** WebSockets once upgraded. */
        tunnelMs: Type.Integer({ minimum: 1, default: 3_600_000 }),
      },
      { additionalProperties: false, default: {} },
    ),
    sync: Type.Object(
      {
        /** Store events within this window are written together. */
        debounceMs: Type.Integer({ minimum: 0, default: 50 }),
        /** A full reconcile at least this often (repairs changes made behind Switchboard's back). */
        reconcileMs: Type.Integer({ minimum: 100, default: 10_000 }),
        /** One Runtime API command's timeout. */
        commandTimeoutMs: Type.Integer({ minimum: 10, default: 2_000 }),
      },
      { additionalProperties: false, default: {} },
    ),
  },
  { additionalProperties: false, default: {} },
);

export type HaproxyConfig = Static<typeof HaproxyConfigSchema>;
