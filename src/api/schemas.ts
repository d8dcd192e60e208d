import { Type, type Static } from 'typebox';
import { HEALTH_PATH_PATTERN } from '../config/schema.js';
import { freeUnits, usedUnits } from '../core/capacity.js';
import { readWhy, whyText, type PlacementWhy } from '../core/explain.js';
import type { Placement, Server } from '../core/model.js';

/** Identifiers travel in URLs and Redis keys: a safe, bounded alphabet. */
export const Id = (description: string) =>
  Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9._~:@-]+$', description });

export const HttpUrl = (description: string) =>
  Type.String({ format: 'uri', pattern: '^https?://', maxLength: 2048, description });

export const ErrorBody = Type.Object(
  {
    error: Type.String({ description: 'Stable error code.' }),
    message: Type.String(),
    field: Type.Optional(Type.String({ description: 'The input that was refused, e.g. body.workers.' })),
    reason: Type.Optional(Type.String()),
  },
  { additionalProperties: true },
);

export const Message = Type.Object({ message: Type.String() });

/** HAProxy-style agent check (probes/agent-check.ts): where the server's agent answers. */
export const AgentFields = {
  agentPort: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: 65535,
      description: "TCP port of the server's HAProxy-style agent (e.g. 9707); polled every probe interval: up/down/fail/stopped, ready/drain/maint, NN% (weight), maxconn:N.",
    }),
  ),
  agentHost: Type.Optional(
    Type.String({ minLength: 1, maxLength: 253, pattern: '^[A-Za-z0-9.:\\[\\]_-]+$', description: "Host of the agent (default: serviceUrl's host)." }),
  ),
  // Printable ASCII on one line: with CR/LF allowed, a registration could make every probe round
  // send a command to any line-protocol service in reach (Redis, memcached, SMTP).
  agentSend: Type.Optional(
    Type.String({ minLength: 1, maxLength: 64, pattern: '^[\\x20-\\x7e]+$', description: "Sent to the agent on connect (HAProxy's agent-send): printable ASCII, one line, at most 64 characters." }),
  ),
};

export const RegisterBody = Type.Object({
  serverId: Id('Server identity; registering it again replaces the earlier registration.'),
  serviceUrl: HttpUrl('Base URL of the media server API (rooms are created at {serviceUrl}/rooms/{roomId}).'),
  workers: Type.Integer({ minimum: 1, maximum: 4096, description: 'mediasoup workers; capacity = workers × consumersPerWorker.' }),
  capacity: Type.Optional(Type.Integer({ minimum: 0, maximum: 1e9, description: 'Capacity in consumers, overriding workers × consumersPerWorker.' })),
  region: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  labels: Type.Optional(Type.Record(Type.String({ maxLength: 64 }), Type.String({ maxLength: 256 }), { maxProperties: 32 })),
  wsUrl: Type.Optional(Type.String({ pattern: '^(wss?|https?)://', maxLength: 2048 })),
  healthPath: Type.Optional(
    Type.String({
      pattern: HEALTH_PATH_PATTERN,
      maxLength: 512,
      description: "Health check path (default: health.path, /health); a path only: no '?', '#', '\\\\', whitespace, '..' segments or leading '//'.",
    }),
  ),
  weight: Type.Optional(Type.Integer({ minimum: 0, maximum: 256 })),
  ...AgentFields,
});
export type RegisterBody = Static<typeof RegisterBody>;

export const HeartbeatBody = Type.Object({
  serverId: Id('A registered server.'),
  load: Type.Optional(
    Type.Record(Type.String({ minLength: 1, maxLength: 64 }), Type.Number({ minimum: 0, maximum: 1e12 }), {
      maxProperties: 64,
      description: 'Reported load; `consumers` counts against capacity as max(reserved, consumers).',
    }),
  ),
});
export type HeartbeatBody = Static<typeof HeartbeatBody>;

export const CreateRoomParams = Type.Object({ roomId: Type.Optional(Id('Room id; generated when absent.')) });
export const CreateRoomBody = Type.Object({
  eventNotificationUri: Type.Optional(HttpUrl('Where the media server (and Switchboard, for room-lost) posts room events.')),
  maxPeerCount: Type.Optional(Type.Integer({ minimum: 2, maximum: 1000, description: 'Peers the room is sized for (default 2).' })),
  region: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'Preferred region; any region if none fits.' })),
});
export type CreateRoomBody = Static<typeof CreateRoomBody>;

export const RoomAnswer = Type.Object(
  {
    protocol: Type.Optional(Type.String()),
    wsUrl: Type.Optional(Type.String()),
    roomId: Type.Optional(Type.String()),
  },
  { additionalProperties: true, description: "The media server's answer, as it gave it." },
);

export const RoomClosedBody = Type.Object({ serverId: Id('Server that closed the room.'), roomId: Id('The closed room.') });
export type RoomClosedBody = Static<typeof RoomClosedBody>;

export const IdParams = Type.Object({ id: Id('Server id.') });
export const RoomParams = Type.Object({ roomId: Id('Room id.') });

const Timestamp = Type.String({ format: 'date-time' });

export const ServerView = Type.Object({
  serverId: Type.String(),
  kind: Type.String(),
  serviceUrl: Type.String(),
  endpoints: Type.Record(Type.String(), Type.String()),
  capacity: Type.Number(),
  reserved: Type.Number(),
  used: Type.Number({ description: 'max(reserved, reported consumers).' }),
  free: Type.Number(),
  reported: Type.Record(Type.String(), Type.Number()),
  weight: Type.Number(),
  region: Type.Optional(Type.String()),
  labels: Type.Record(Type.String(), Type.String()),
  adminState: Type.String(),
  healthy: Type.Boolean(),
  health: Type.Object({
    status: Type.String(),
    since: Timestamp,
    lastCheck: Type.Union([Timestamp, Type.Null()]),
    successes: Type.Number(),
    failures: Type.Number(),
    lastError: Type.Optional(Type.String()),
    latencyMs: Type.Optional(Type.Number()),
  }),
  attributes: Type.Record(Type.String(), Type.Union([Type.String(), Type.Number(), Type.Boolean()])),
  placements: Type.Number({ description: 'Rooms (or streams) on the server.' }),
  registeredAt: Timestamp,
  lastHeartbeat: Timestamp,
});

const Count = Type.Integer({ minimum: 1 });

/** core/explain.ts's PlacementWhy: why a placement went to its server. */
export const PlacementWhyView = Type.Object(
  {
    policy: Type.String({ description: 'The policy used, by its config name.' }),
    servers: Type.Integer({ minimum: 0, description: 'Servers in the pool, in the view the choice was made from.' }),
    eligible: Type.Integer({ minimum: 0, description: 'Of them, how many could take it (placeable, room for the units, not excluded).' }),
    skipped: Type.Optional(
      Type.Object(
        { unhealthy: Type.Optional(Count), draining: Type.Optional(Count), full: Type.Optional(Count), excluded: Type.Optional(Count) },
        { description: 'Why the others could not (draining: drain or maint); absent when none.' },
      ),
    ),
    region: Type.Optional(
      Type.Object(
        { wanted: Type.String(), local: Type.Boolean({ description: 'false: no server in that region could take it, so any region did.' }) },
        { description: 'Only when a region was asked for.' },
      ),
    ),
    ranked: Type.Optional(
      Type.Array(Type.Object({ id: Type.String(), free: Type.Number(), capacity: Type.Number() }), {
        maxItems: 3,
        description: "The policy's first candidates, best first, with their free units and capacity then.",
      }),
    ),
  },
  { description: 'Why the placement went to its server; absent on placements made before Switchboard recorded it.' },
);

export const RoomView = Type.Object({
  roomId: Type.String(),
  serverId: Type.String(),
  state: Type.String({ description: 'pending while the media server creates it, then ready.' }),
  consumers: Type.Number({ description: 'Consumers reserved for the room.' }),
  maxPeerCount: Type.Optional(Type.Number()),
  region: Type.Optional(Type.String()),
  eventNotificationUri: Type.Optional(Type.String()),
  createdAt: Timestamp,
  answer: Type.Optional(RoomAnswer),
  why: Type.Optional(PlacementWhyView),
  whyText: Type.Optional(Type.String({ description: 'The same in one line, e.g. "most-free-capacity: ranked 1st of 3 eligible (of 4; 1 draining skipped), 60 of 100 units free".' })),
});

/** Where a stream is (seed 003's origin mapping): `GET /origins/streams`. */
export const StreamView = Type.Object({
  stream: Type.String({ description: 'The stream key, `vhost/app/stream` (`__defaultVhost__` when the client named no virtual host).' }),
  origin: Type.String({ description: 'The origin (server id) the stream is mapped to: its publisher and every player go there.' }),
  state: Type.String({ description: 'pending while being mapped, then ready.' }),
  createdAt: Timestamp,
  why: Type.Optional(PlacementWhyView),
  whyText: Type.Optional(Type.String()),
});

const iso = (ms: number) => new Date(ms).toISOString();

/** A placement's explanation as a view shows it (both fields, or neither for older placements). */
function explained(p: Placement): { why?: PlacementWhy; whyText?: string } {
  const why = readWhy(p.why);
  return why ? { why, whyText: whyText(why, p.serverId) } : {};
}

export function streamView(p: Placement): Static<typeof StreamView> {
  return { stream: p.id, origin: p.serverId, state: p.state, createdAt: iso(p.createdAt), ...explained(p) };
}

/** Servers in a stable order (by id) for listings. */
export function sortById<T extends { id: string }>(list: T[]): T[] {
  return list.sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
}

export function serverView(s: Server, placements: number): Static<typeof ServerView> {
  const reported: Record<string, number> = {};
  for (const [k, v] of Object.entries(s.reported ?? {})) if (typeof v === 'number' && k !== 'units') reported[k] = v;
  const view: Static<typeof ServerView> = {
    serverId: s.id,
    kind: s.kind,
    serviceUrl: s.serviceUrl,
    endpoints: s.endpoints,
    capacity: s.capacity,
    reserved: s.reserved,
    used: usedUnits(s),
    free: freeUnits(s),
    reported,
    weight: s.weight,
    labels: s.labels,
    adminState: s.adminState,
    healthy: s.health.status === 'healthy',
    health: {
      status: s.health.status,
      since: iso(s.health.since),
      lastCheck: s.health.lastCheck ? iso(s.health.lastCheck) : null,
      successes: s.health.successes,
      failures: s.health.failures,
    },
    attributes: s.attributes,
    placements,
    registeredAt: iso(s.registeredAt),
    lastHeartbeat: iso(s.lastHeartbeat),
  };
  if (s.region !== undefined) view.region = s.region;
  if (s.health.lastError !== undefined) view.health.lastError = s.health.lastError;
  if (s.health.lastLatencyMs !== undefined) view.health.latencyMs = Math.round(s.health.lastLatencyMs * 100) / 100;
  return view;
}

export function roomView(p: Placement): Static<typeof RoomView> {
  const view: Static<typeof RoomView> = { roomId: p.id, serverId: p.serverId, state: p.state, consumers: p.units, createdAt: iso(p.createdAt) };
  if (typeof p.attributes.maxPeerCount === 'number') view.maxPeerCount = p.attributes.maxPeerCount;
  if (typeof p.attributes.region === 'string') view.region = p.attributes.region;
  if (p.notifyUri !== undefined) view.eventNotificationUri = p.notifyUri;
  if (p.data !== undefined) view.answer = p.data;
  return { ...view, ...explained(p) };
}
