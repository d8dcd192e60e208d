import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { TurnService } from '../../pools/turn/service.js';
import type { NetworkPolicy } from '../../security/network-policy.js';
import { bearerCheck } from '../auth.js';
import { AgentFields, ErrorBody, Id, IdParams, ServerView, serverView, sortById } from '../schemas.js';

const errors = { 400: ErrorBody, 401: ErrorBody, 404: ErrorBody, 503: ErrorBody };
const Host = Type.String({ minLength: 1, maxLength: 253, pattern: '^[A-Za-z0-9.:_\\[\\]-]+$' });
const Port = Type.Integer({ minimum: 1, maximum: 65535 });
/**
 * The `user` of the TURN REST API username `<expiry>:<user>`: coturn splits the username on ':',
 * so the user part has none; bounded so the username stays far below STUN's 513-byte limit.
 */
const TurnUser = Type.String({
  minLength: 1,
  maxLength: 128,
  pattern: '^[A-Za-z0-9._~@-]+$',
  description: "Who the credentials are for (the username's user part): letters, digits, . _ ~ @ -, no ':'.",
});

/**
 * TURN (seed 001): the coturn balancer's routes, ICE servers with credentials, and registration.
 * `credentialTokens`: bearer tokens GET /turn/ice-servers needs (see turnCredentialTokens); open
 * when absent.
 */
export const turnRoutes: FastifyPluginAsyncTypebox<{ turn: TurnService; credentialTokens?: string[] | undefined; networkPolicy: NetworkPolicy }> = async (
  app,
  { turn, credentialTokens, networkPolicy },
) => {
  const credentialsAuth = credentialTokens?.length
    ? bearerCheck(credentialTokens, 'this route hands out TURN credentials: it needs Authorization: Bearer <AUTH_TOKEN or TURN_CREDENTIALS_TOKEN>')
    : undefined;

  app.get(
    '/coturn',
    {
      schema: {
        tags: ['turn'],
        summary: "The coturn balancer's answer: every TURN server's health and the chosen one",
        response: {
          200: Type.Object({
            turn_data: Type.Record(
              Type.String(),
              Type.Object({ failed_checks: Type.Number(), healthy: Type.Boolean(), initial: Type.Number(), success_th: Type.Number() }),
            ),
            turn_server: Type.String(),
          }),
          503: ErrorBody,
        },
      },
    },
    async () => turn.coturn(),
  );

  app.get(
    '/p/health_check',
    {
      schema: {
        tags: ['turn'],
        summary: '200 while a healthy TURN server is selected, else 500 (the coturn balancer health route)',
        response: { 200: Type.Object({ health: Type.String() }), 500: Type.Object({ health: Type.String() }) },
      },
    },
    async (_req, reply) => (turn.healthy() ? { health: 'healthy' } : reply.code(500).send({ health: 'unhealthy' })),
  );

  app.get(
    '/turn/ice-servers',
    {
      ...(credentialsAuth ? { onRequest: credentialsAuth } : {}),
      schema: {
        tags: ['turn'],
        summary: 'ICE servers for RTCPeerConnection: a healthy TURN server with TURN REST API credentials',
        querystring: Type.Object({
          user: Type.Optional(TurnUser),
          region: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
        }),
        response: {
          200: Type.Object({
            iceServers: Type.Array(Type.Object({ urls: Type.Array(Type.String()), username: Type.Optional(Type.String()), credential: Type.Optional(Type.String()) })),
            ttl: Type.Number(),
          }),
          ...errors,
        },
      },
    },
    async (req) => turn.iceServers(req.query.user ?? 'switchboard', req.query.region),
  );

  app.post(
    '/turn/register',
    {
      config: { auth: true },
      schema: {
        tags: ['turn'],
        summary: 'Register a TURN server (again: replaces the earlier registration)',
        body: Type.Object({
          serverId: Type.Optional(Id('Identity; the public host when absent.')),
          host: Host,
          privateAddress: Type.Optional(Host),
          port: Type.Optional(Port),
          tlsPort: Type.Optional(Port),
          region: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
          // The agent is asked at the probed address (privateAddress, else host).
          agentPort: AgentFields.agentPort,
          agentSend: AgentFields.agentSend,
        }),
        response: { 200: ServerView, ...errors },
      },
    },
    async (req) => {
      // The probed address (privateAddress, else host) is what Switchboard connects to; a public
      // host next to a privateAddress is only handed to clients.
      if (req.body.privateAddress !== undefined) await networkPolicy.assertAllowedHost(req.body.privateAddress, 'body.privateAddress');
      else await networkPolicy.assertAllowedHost(req.body.host, 'body.host');
      return serverView(await turn.register(req.body), 0);
    },
  );

  app.post(
    '/turn/heartbeat',
    {
      config: { auth: true },
      schema: {
        tags: ['turn'],
        summary: 'A TURN server is alive; `allocations` orders servers under least-allocations',
        body: Type.Object({
          serverId: Id('A registered TURN server.'),
          load: Type.Optional(Type.Record(Type.String({ minLength: 1, maxLength: 64 }), Type.Number({ minimum: 0, maximum: 1e12 }), { maxProperties: 64 })),
        }),
        response: { 200: ServerView, ...errors },
      },
    },
    async (req) => serverView(await turn.heartbeat(req.body.serverId, req.body.load), 0),
  );

  app.get(
    '/turn/servers',
    { schema: { tags: ['turn'], summary: 'All TURN servers', response: { 200: Type.Object({ servers: Type.Array(ServerView) }) } } },
    async () => ({ servers: sortById(turn.listServers()).map((s) => serverView(s, 0)) }),
  );

  app.delete(
    '/turn/servers/:id',
    { config: { auth: true }, schema: { tags: ['turn'], summary: 'Deregister a TURN server', params: IdParams, response: { 200: ServerView, ...errors } } },
    async (req) => serverView(await turn.deregister(req.params.id), 0),
  );
};
