import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { RoomService } from '../../pools/rooms/service.js';
import type { NetworkPolicy } from '../../security/network-policy.js';
import {
  CreateRoomBody,
  CreateRoomParams,
  ErrorBody,
  HeartbeatBody,
  Message,
  RegisterBody,
  RoomAnswer,
  RoomClosedBody,
  RoomParams,
  RoomView,
  roomView,
  ServerView,
  serverView,
} from '../schemas.js';

const errors = { 400: ErrorBody, 401: ErrorBody, 404: ErrorBody, 409: ErrorBody, 502: ErrorBody, 503: ErrorBody };

/** seed 000's routes, exactly as its clients and media servers call them, plus heartbeat and room lookup. */
export const roomRoutes: FastifyPluginAsyncTypebox<{ rooms: RoomService; networkPolicy: NetworkPolicy }> = async (app, { rooms, networkPolicy }) => {
  app.post(
    '/register',
    {
      config: { auth: true },
      schema: {
        tags: ['rooms'],
        summary: 'Register a media server (again: replaces the earlier registration)',
        body: RegisterBody,
        response: { 200: Message, ...errors },
      },
    },
    async (req) => {
      // Switchboard calls serviceUrl (rooms, health probes); wsUrl is for clients and not checked.
      await networkPolicy.assertAllowedUrl(req.body.serviceUrl, 'body.serviceUrl');
      if (req.body.agentHost !== undefined) await networkPolicy.assertAllowedHost(req.body.agentHost, 'body.agentHost');
      await rooms.register(req.body);
      return { message: 'Server registered successfully' };
    },
  );

  app.post(
    '/heartbeat',
    {
      config: { auth: true },
      schema: {
        tags: ['rooms'],
        summary: 'Report a media server alive, with its load',
        body: HeartbeatBody,
        response: { 200: ServerView, ...errors },
      },
    },
    async (req) => {
      const server = await rooms.heartbeat(req.body.serverId, req.body.load);
      return serverView(server, rooms.roomCount(server.id));
    },
  );

  app.post(
    '/rooms/:roomId?',
    {
      config: { auth: true },
      // Clients may POST without a body: every field has a default.
      preValidation: (req, _reply, done) => {
        if (req.body === undefined || req.body === null) req.body = {};
        done();
      },
      schema: {
        tags: ['rooms'],
        summary: 'Place a room on the server with the most free capacity (or return its placement)',
        params: CreateRoomParams,
        body: CreateRoomBody,
        response: { 200: RoomAnswer, ...errors, 504: ErrorBody },
      },
    },
    async (req) => {
      const { roomId } = req.params;
      // Switchboard posts room-lost webhooks there (and the media server room events).
      if (req.body.eventNotificationUri !== undefined) await networkPolicy.assertAllowedUrl(req.body.eventNotificationUri, 'body.eventNotificationUri');
      return rooms.createRoom({ ...req.body, ...(roomId ? { roomId } : {}) });
    },
  );

  app.get(
    '/rooms/:roomId',
    { schema: { tags: ['rooms'], summary: 'Where a room is placed', params: RoomParams, response: { 200: RoomView, ...errors } } },
    async (req) => roomView(rooms.getRoom(req.params.roomId)),
  );

  app.post(
    '/room-closed',
    {
      config: { auth: true },
      schema: {
        tags: ['rooms'],
        summary: 'A media server reports a room closed; its consumers are freed',
        body: RoomClosedBody,
        response: { 200: Message, ...errors },
      },
    },
    async (req) => {
      await rooms.closeRoom(req.body.serverId, req.body.roomId);
      return { message: 'Room closed notification processed successfully' };
    },
  );
};
