import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { AppError } from '../../errors.js';
import type { OriginService } from '../../pools/origins/service.js';
import { ORIGIN_PROTOCOLS, SrsBodyError, checkListenList, parseListen, parseSrsRegister, type OriginProtocol, type OriginRegistration } from '../../pools/origins/srs.js';
import type { NetworkPolicy } from '../../security/network-policy.js';
import { ErrorBody, Id, IdParams, ServerView, serverView, sortById, StreamView, streamView } from '../schemas.js';

const errors = { 400: ErrorBody, 401: ErrorBody, 404: ErrorBody, 503: ErrorBody };
const Host = Type.String({ minLength: 1, maxLength: 253, pattern: '^[A-Za-z0-9.:_-]+$' });
const ListenList = Type.Array(Type.Union([Type.Integer({ minimum: 1, maximum: 65535 }), Type.String({ minLength: 1, maxLength: 300 })]), {
  maxItems: 32,
  description: 'Listen endpoints: ports, or strings "1935", "host:1935", "tcp://:1935", "udp://0.0.0.0:8000".',
});

/** SRS's error answers carry a non-zero `code` (its own shape), besides Switchboard's fields. */
const SrsError = Type.Object(
  { code: Type.Optional(Type.Integer()), error: Type.String(), message: Type.String(), field: Type.Optional(Type.String()), reason: Type.Optional(Type.String()) },
  { additionalProperties: true },
);

const SRS_BODY_DOC =
  "SRS's heartbeat body: {ip, server, service, pid, rtmp:[...], http:[...], api:[...], srt:[...], rtc:[...], device_id}; entries are strings, a port (\"1935\") or host:port (\"udp://0.0.0.0:8000\" for rtc). Server id: server-service-pid.";

/**
 * Every error answer of the SRS route gets SRS's non-zero `code` (the HTTP status), whoever
 * answered: validation, auth, the body parser, the SSRF guard, the store.
 */
function addSrsCode(statusCode: number, payload: unknown): unknown {
  if (statusCode < 400 || typeof payload !== 'string') return payload;
  try {
    const body = JSON.parse(payload) as unknown;
    if (typeof body !== 'object' || body === null || Array.isArray(body) || 'code' in body) return payload;
    return JSON.stringify({ code: statusCode, ...body });
  } catch {
    return payload;
  }
}

/** A listen entry that names its own host is connected to as well: the SSRF guard checks it too. */
async function assertAllowed(networkPolicy: NetworkPolicy, reg: OriginRegistration, hostField: string, listField: (p: OriginProtocol) => string): Promise<void> {
  await networkPolicy.assertAllowedHost(reg.host, hostField);
  for (const p of ORIGIN_PROTOCOLS) {
    for (const [i, entry] of reg.listen[p].entries()) {
      const host = parseListen(entry)?.host;
      if (host !== undefined && host !== reg.host) await networkPolicy.assertAllowedHost(host.replace(/^\[|\]$/g, ''), `${listField(p)}[${i}]`);
    }
  }
}

const asBadRequest = (err: unknown): unknown =>
  err instanceof SrsBodyError ? new AppError(400, 'bad_request', err.message, { field: err.field, reason: err.reason }) : err;

/**
 * SRS's registration route alone (seed 003): on the API port and on the system API listener
 * (PROXY_SYSTEM_API). Writes need the bearer token when AUTH_TOKEN is set (`config.auth`).
 */
export const srsRegisterRoutes: FastifyPluginAsyncTypebox<{ origins: OriginService; networkPolicy: NetworkPolicy }> = async (app, { origins, networkPolicy }) => {
  app.post(
    '/api/v1/srs/register',
    {
      config: { auth: true },
      onSend: async (_req, reply, payload) => addSrsCode(reply.statusCode, payload),
      schema: {
        tags: ['origins'],
        summary: "Register a streaming origin with SRS's heartbeat body (again: keeps it alive, keeps its streams)",
        description: SRS_BODY_DOC,
        // Checked by parseSrsRegister (SRS's answers: a non-zero code and the field), not by the schema.
        body: Type.Unknown({ description: SRS_BODY_DOC }),
        response: { 200: Type.Object({ code: Type.Integer(), pid: Type.String() }), 400: SrsError, 401: SrsError, 503: SrsError },
      },
    },
    async (req) => {
      let reg: OriginRegistration;
      try {
        reg = parseSrsRegister(req.body);
      } catch (err) {
        throw asBadRequest(err);
      }
      await assertAllowed(networkPolicy, reg, 'body.ip', (p) => `body.${p}`);
      await origins.register(reg);
      // SRS's proxy answers its own pid.
      return { code: 0, pid: String(process.pid) };
    },
  );
};

/** The origins pool's API: SRS's registration and the generic one for non-SRS origins. */
export const originRoutes: FastifyPluginAsyncTypebox<{ origins: OriginService; networkPolicy: NetworkPolicy }> = async (app, opts) => {
  const { origins, networkPolicy } = opts;
  await app.register(srsRegisterRoutes, opts);

  app.post(
    '/origins/register',
    {
      config: { auth: true },
      schema: {
        tags: ['origins'],
        summary: 'Register a streaming origin (again with the same endpoints: a heartbeat; with other endpoints: a new registration)',
        body: Type.Object({
          serverId: Id('Origin identity.'),
          host: Host,
          rtmp: Type.Optional(ListenList),
          http: Type.Optional(ListenList),
          api: Type.Optional(ListenList),
          srt: Type.Optional(ListenList),
          rtc: Type.Optional(ListenList),
          region: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
          capacity: Type.Optional(Type.Integer({ minimum: 0, maximum: 1e9, description: 'Streams the origin takes; unlimited when absent.' })),
        }),
        response: { 200: ServerView, ...errors },
      },
    },
    async (req) => {
      const b = req.body;
      const listen = {} as Record<OriginProtocol, string[]>;
      try {
        for (const p of ORIGIN_PROTOCOLS) listen[p] = checkListenList(b[p]?.map(String), `body.${p}`, false);
      } catch (err) {
        throw asBadRequest(err);
      }
      const reg: OriginRegistration = { serverId: b.serverId, host: b.host, listen };
      if (b.region !== undefined) reg.region = b.region;
      if (b.capacity !== undefined) reg.capacity = b.capacity;
      await assertAllowed(networkPolicy, reg, 'body.host', (p) => `body.${p}`);
      const { server } = await origins.register(reg);
      return serverView(server, origins.placements(server.id));
    },
  );

  app.post(
    '/origins/heartbeat',
    {
      config: { auth: true },
      schema: {
        tags: ['origins'],
        summary: 'A streaming origin is alive (and its load)',
        body: Type.Object({
          serverId: Id('A registered origin.'),
          load: Type.Optional(Type.Record(Type.String({ minLength: 1, maxLength: 64 }), Type.Number({ minimum: 0, maximum: 1e12 }), { maxProperties: 64 })),
        }),
        response: { 200: ServerView, ...errors },
      },
    },
    async (req) => {
      const server = await origins.heartbeat(req.body.serverId, req.body.load);
      return serverView(server, origins.placements(server.id));
    },
  );

  app.get(
    '/origins/servers',
    { schema: { tags: ['origins'], summary: 'All streaming origins', response: { 200: Type.Object({ servers: Type.Array(ServerView) }) } } },
    async () => ({ servers: sortById(origins.listServers()).map((s) => serverView(s, origins.placements(s.id))) }),
  );

  app.get(
    '/origins/streams',
    {
      schema: {
        tags: ['origins'],
        summary: 'Which origin holds each stream (all, or one origin’s), in key order',
        querystring: Type.Object({
          origin: Type.Optional(Id('Only the streams of this origin (server id).')),
          // Query strings are not coerced (the API's validator is strict): the range as a pattern.
          limit: Type.Optional(Type.String({ pattern: '^(10000|[1-9][0-9]{0,3})$', description: 'At most this many streams, 1 to 10000 (default 1000), the first in key order; `total` counts them all.' })),
        }),
        response: { 200: Type.Object({ total: Type.Integer(), streams: Type.Array(StreamView) }), ...errors },
      },
    },
    async (req) => {
      const { origin } = req.query;
      const limit = req.query.limit === undefined ? 1_000 : Number(req.query.limit);
      if (origin !== undefined && !origins.listServers().some((s) => s.id === origin)) throw new AppError(404, 'unknown_server', `origin "${origin}" is not registered`, { field: 'origin', reason: 'not registered' });
      const all = sortById(origins.listStreams(origin));
      return { total: all.length, streams: all.slice(0, limit).map(streamView) };
    },
  );

  app.get(
    '/origins/streams/*',
    {
      schema: {
        tags: ['origins'],
        summary: 'Where one stream is: `/origins/streams/{vhost}/{app}/{stream}`',
        params: Type.Object({ '*': Type.String({ minLength: 1, maxLength: 1024 }) }),
        response: { 200: StreamView, ...errors },
      },
    },
    async (req) => {
      const key = req.params['*'];
      const p = origins.getStream(key);
      if (!p) throw new AppError(404, 'not_found', `stream "${key}" is not mapped to any origin`, { field: 'stream', reason: 'not mapped' });
      return streamView(p);
    },
  );

  app.delete(
    '/origins/servers/:id',
    { config: { auth: true }, schema: { tags: ['origins'], summary: 'Deregister a streaming origin (its streams are released)', params: IdParams, response: { 200: ServerView, ...errors } } },
    async (req) => serverView(await origins.deregister(req.params.id), 0),
  );
};
