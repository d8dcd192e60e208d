/** The shapes Switchboard's API takes and answers (see src/api/schemas.ts and the README's API tables). */

export type Pool = 'rooms' | 'turn';

/** `POST /register` (seed 000's body, plus Switchboard's optional fields); `serverId` comes from the client. */
export interface RoomServerRegistration {
  /** Base URL of the media server's API: Switchboard creates rooms at `{serviceUrl}/rooms/{roomId}` and probes its health. */
  serviceUrl: string;
  /** mediasoup workers: capacity = workers × consumersPerWorker (500) unless `capacity` is given. */
  workers: number;
  /** Capacity in consumers, overriding workers × consumersPerWorker. */
  capacity?: number;
  region?: string;
  labels?: Record<string, string>;
  /** What clients connect to (handed out in room answers by the media server; not checked). */
  wsUrl?: string;
  /** Health check path (default `/health`; the original mediasoup server answers on `/rooms/health`). */
  healthPath?: string;
  weight?: number;
}

/** `POST /turn/register`; `serverId` comes from the client. */
export interface TurnServerRegistration {
  /** Public host handed to clients in ICE servers. */
  host: string;
  /** Address Switchboard probes (default: host). */
  privateAddress?: string;
  port?: number;
  tlsPort?: number;
  region?: string;
}

export type Registration<P extends Pool> = P extends 'turn' ? TurnServerRegistration : RoomServerRegistration;

/** Reported load: `consumers` (rooms) counts against capacity; `allocations` (TURN) orders servers under least-allocations. */
export type Load = Record<string, number>;

export interface Message {
  message: string;
}

/** A registered server as Switchboard sees it (`GET /servers/:id`, heartbeat, drain, delete answers). */
export interface ServerView {
  serverId: string;
  kind: string;
  serviceUrl: string;
  endpoints: Record<string, string>;
  capacity: number;
  reserved: number;
  /** max(reserved, reported consumers). */
  used: number;
  free: number;
  /** The load last reported by heartbeat. */
  reported: Record<string, number>;
  weight: number;
  region?: string;
  labels: Record<string, string>;
  /** `active`, `drain`, ... */
  adminState: string;
  healthy: boolean;
  health: {
    status: string;
    since: string;
    lastCheck: string | null;
    successes: number;
    failures: number;
    lastError?: string;
    latencyMs?: number;
  };
  attributes: Record<string, string | number | boolean>;
  /** Rooms on the server. */
  placements: number;
  registeredAt: string;
  lastHeartbeat: string;
}

/** `POST /register` answers a message; `POST /turn/register` the server's view. */
export type RegisterResult<P extends Pool> = P extends 'turn' ? ServerView : Message;
