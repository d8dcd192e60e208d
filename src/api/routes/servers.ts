import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { HttpPoolService } from '../../pools/http/service.js';
import type { RoomService } from '../../pools/rooms/service.js';
import { backendServers } from './backends.js';
import { ErrorBody, IdParams, ServerView, serverView, sortById } from '../schemas.js';

const errors = { 400: ErrorBody, 401: ErrorBody, 404: ErrorBody, 503: ErrorBody };

/** The server registry, for operators: list, inspect, drain, deregister. */
export const serverRoutes: FastifyPluginAsyncTypebox<{ rooms: RoomService; http?: HttpPoolService }> = async (app, { rooms, http }) => {
  const view = (id: string) => serverView(rooms.getServer(id), rooms.roomCount(id));

  app.get(
    '/servers',
    { schema: { tags: ['servers'], summary: 'All registered servers', response: { 200: Type.Object({ servers: Type.Array(ServerView) }) } } },
    async () => ({
      servers: [...sortById(rooms.listServers()).map((s) => serverView(s, rooms.roomCount(s.id))), ...backendServers(http).map((s) => serverView(s, 0))],
    }),
  );

  app.get(
    '/servers/:id',
    { schema: { tags: ['servers'], summary: 'One server', params: IdParams, response: { 200: ServerView, ...errors } } },
    async (req) => view(req.params.id),
  );

  app.delete(
    '/servers/:id',
    {
      config: { auth: true },
      schema: { tags: ['servers'], summary: 'Deregister a server; its rooms are released and their owners notified', params: IdParams, response: { 200: ServerView, ...errors } },
    },
    async (req) => serverView(await rooms.deregister(req.params.id), 0),
  );

  app.post(
    '/servers/:id/drain',
    {
      config: { auth: true },
      schema: { tags: ['servers'], summary: 'Drain: no new rooms, existing rooms stay', params: IdParams, response: { 200: ServerView, ...errors } },
    },
    async (req) => {
      await rooms.setAdminState(req.params.id, 'drain');
      return view(req.params.id);
    },
  );

  app.delete(
    '/servers/:id/drain',
    {
      config: { auth: true },
      schema: { tags: ['servers'], summary: 'Undrain: the server takes new rooms again', params: IdParams, response: { 200: ServerView, ...errors } },
    },
    async (req) => {
      await rooms.setAdminState(req.params.id, 'active');
      return view(req.params.id);
    },
  );
};
