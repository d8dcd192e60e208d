import { isIP } from 'node:net';
import type { NetworkPolicy } from '../security/network-policy.js';
import { hostPort } from './balancer.js';
import type { RoomTarget, RoomTargets } from './connection.js';
import type { Directory, RoomLocation } from './directory.js';
import { ProxyError } from './respond.js';
import { Upstream } from './upstream.js';

/**
 * Room routing: a request naming room R goes to the server holding R's placement in the rooms
 * pool. One `Upstream` (with its kept-alive connections) per media-server address.
 */
export class RoomRouter implements RoomTargets {
  private readonly upstreams = new Map<string, Upstream>();

  constructor(
    private readonly directory: Directory,
    private readonly maxIdle: number,
    private readonly networkPolicy: NetworkPolicy | undefined,
  ) {}

  resolve(roomId: string): RoomTarget | Promise<RoomTarget> {
    const loc = this.directory.room(roomId);
    return loc instanceof Promise ? loc.then((l) => this.target(roomId, l)) : this.target(roomId, loc);
  }

  private target(roomId: string, loc: RoomLocation): RoomTarget {
    if (loc.state === 'absent') return { status: 404, error: ProxyError.roomNotFound, message: `room ${roomId} is not placed on any server` };
    if (loc.state === 'unavailable') return { status: 503, error: ProxyError.noBackend, message: `room ${roomId}: its location could not be looked up in time; try again` };
    if (loc.state === 'pending') return { status: 503, error: ProxyError.roomPending, message: `room ${roomId} is being created; try again` };
    const where = hostPort(loc.url);
    if (!where) return { status: 503, error: ProxyError.noBackend, message: `room ${roomId}: its server's address ${loc.url} cannot be proxied` };
    // The media server's answer names the address: it passes the same SSRF guard as registrations.
    if (this.networkPolicy && isIP(where.host) !== 0 && !this.networkPolicy.isAllowed(where.host)) {
      return { status: 503, error: ProxyError.noBackend, message: `room ${roomId}: its server's address is not allowed` };
    }
    const key = `${loc.serverId}|${where.host}|${where.port}|${where.tls}`;
    let u = this.upstreams.get(key);
    if (!u) {
      u = new Upstream(key, where.host, where.port, where.tls, 1, 0, this.maxIdle, this.networkPolicy);
      this.upstreams.set(key, u);
    }
    u.inflight++;
    return { upstream: u };
  }

  release(u: Upstream): void {
    u.inflight--;
  }

  /** Drops addresses nothing uses any more (servers gone, rooms moved). */
  prune(): void {
    for (const [key, u] of this.upstreams) {
      if (u.inflight === 0 && u.open === 0) this.upstreams.delete(key);
    }
  }

  close(): void {
    for (const u of this.upstreams.values()) u.closeIdle();
  }
}
