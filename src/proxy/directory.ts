import type { Server } from '../core/model.js';
import type { StateStore } from '../store/store.js';

/** Where a room lives, as the proxy needs it. */
export type RoomLocation =
  | { state: 'ready'; serverId: string; /** Base URL the room's traffic goes to (ws/wss/http/https). */ url: string }
  | { state: 'pending' }
  | { state: 'absent' }
  /** Where the room lives could not be learned (a worker's question to the primary timed out). */
  | { state: 'unavailable' };

/**
 * What the data plane reads of the registry: the servers of a pool and where rooms live. In the
 * main process it is the store's view (`StoreDirectory`); in a worker process it is a copy the
 * primary keeps current over IPC (src/proxy/cluster.ts).
 */
export interface Directory {
  servers(pool: string): readonly Server[];
  /** Called with the pool's name whenever its servers change. */
  subscribe(listener: (pool: string) => void): () => void;
  room(roomId: string): RoomLocation | Promise<RoomLocation>;
}

export const ROOMS_POOL_NAME = 'rooms';

/**
 * The address a room's connections are proxied to: the server's registered WebSocket endpoint (the
 * `wsUrl` it registered: the operator's address for its signalling, SSRF-checked at
 * registration), else the `wsUrl` of the media server's answer for the room (often the public
 * address clients would use without the proxy), else the server's service URL. Only its scheme,
 * host and port are used: the client's own path and query are forwarded as they came.
 */
export function roomUrl(server: Server | undefined, data: Record<string, unknown> | undefined): string | undefined {
  if (server?.endpoints.ws) return server.endpoints.ws;
  const fromAnswer = data?.wsUrl;
  if (typeof fromAnswer === 'string' && fromAnswer !== '') return fromAnswer;
  return server?.serviceUrl;
}

/** Where room `roomId` lives, from a store (or anything with its read methods). */
export function locateRoom(store: Pick<StateStore, 'getPlacement' | 'getServer'>, roomId: string): RoomLocation {
  const p = store.getPlacement(ROOMS_POOL_NAME, roomId);
  if (!p) return { state: 'absent' };
  if (p.state !== 'ready') return { state: 'pending' };
  const url = roomUrl(store.getServer(ROOMS_POOL_NAME, p.serverId), p.data);
  return url ? { state: 'ready', serverId: p.serverId, url } : { state: 'absent' };
}

/** The store's local view, read directly (the proxy in the main process). */
export class StoreDirectory implements Directory {
  constructor(private readonly store: StateStore) {}

  servers(pool: string): readonly Server[] {
    return this.store.listServers(pool);
  }

  subscribe(listener: (pool: string) => void): () => void {
    return this.store.subscribe((ev) => {
      if (ev.type !== 'placement' && ev.type !== 'placement-removed') listener(ev.pool);
    });
  }

  room(roomId: string): RoomLocation {
    return locateRoom(this.store, roomId);
  }
}
