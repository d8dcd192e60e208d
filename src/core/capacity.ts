import type { Server } from './model.js';

/**
 * Units in use on a server: what Switchboard reserved, or what the server says it carries when
 * that is more (load that arrived by another path, or rooms that grew past their estimate).
 */
export function usedUnits(server: Pick<Server, 'reserved' | 'reported'>): number {
  return Math.max(server.reserved, server.reported?.units ?? 0);
}

export function freeUnits(server: Pick<Server, 'capacity' | 'reserved' | 'reported'>): number {
  return server.capacity - usedUnits(server);
}

/** Whether new work may go to the server at all: active and healthy. */
export function isPlaceable(server: Pick<Server, 'adminState' | 'health'>): boolean {
  return server.adminState === 'active' && server.health.status === 'healthy';
}

/** seed 000: an SFU's capacity is `workers × consumersPerWorker` consumers (500 by default). */
export function sfuCapacity(workers: number, consumersPerWorker: number): number {
  return workers * consumersPerWorker;
}

/**
 * Consumers a room is expected to need. Every peer sends `consumersPerPeerPair` streams (audio and
 * video by default) and receives them from each of the other peers:
 * `maxPeerCount × (maxPeerCount − 1) × consumersPerPeerPair`.
 */
export function roomUnits(maxPeerCount: number, consumersPerPeerPair: number): number {
  return maxPeerCount * (maxPeerCount - 1) * consumersPerPeerPair;
}
