import { initialHealth } from './health.js';
import type { PlacementWhy } from './explain.js';
import type { Placement, Server, ServerRegistration } from './model.js';

/** The server record a registration creates. Pure: the caller supplies the time and the epoch. */
export function newServer(reg: ServerRegistration, now: number, epoch: string): Server {
  const server: Server = {
    id: reg.id,
    kind: reg.kind,
    serviceUrl: reg.serviceUrl,
    endpoints: reg.endpoints ?? {},
    capacity: reg.capacity,
    reserved: 0,
    weight: reg.weight ?? 100,
    labels: reg.labels ?? {},
    adminState: 'active',
    health: initialHealth(reg.initialHealth, now),
    attributes: reg.attributes ?? {},
    registeredAt: now,
    lastHeartbeat: now,
    epoch,
    rev: 1,
  };
  if (reg.region !== undefined) server.region = reg.region;
  if (reg.healthPath !== undefined) server.healthPath = reg.healthPath;
  return server;
}

/** A placement record for a reservation on `server`; `why` is the store's explanation of the choice. */
export function newPlacement(
  server: Pick<Server, 'id' | 'epoch'>,
  request: { placementId: string; units: number; notifyUri?: string; attributes?: Placement['attributes']; now: number; owner?: string; pendingTtlMs?: number },
  attempt: string,
  why?: PlacementWhy,
): Placement {
  const placement: Placement = {
    id: request.placementId,
    serverId: server.id,
    serverEpoch: server.epoch,
    units: request.units,
    state: 'pending',
    createdAt: request.now,
    attributes: request.attributes ?? {},
    attempt,
  };
  if (request.owner !== undefined) placement.owner = request.owner;
  if (request.pendingTtlMs !== undefined) placement.deadline = request.now + request.pendingTtlMs;
  if (request.notifyUri !== undefined) placement.notifyUri = request.notifyUri;
  if (why !== undefined) placement.why = why;
  return placement;
}

/** The placement a successful confirm leaves: ready, with the server's answer, no deadline. */
export function readyPlacement(pending: Placement, data: Record<string, unknown>): Placement {
  // Built field by field, not `{...pending}` then `delete`: a delete turns the object into a slow
  // dictionary-mode object, and this runs once per placement.
  const ready: Placement = {
    id: pending.id,
    serverId: pending.serverId,
    serverEpoch: pending.serverEpoch,
    units: pending.units,
    state: 'ready',
    createdAt: pending.createdAt,
    attributes: pending.attributes,
    data,
  };
  if (pending.owner !== undefined) ready.owner = pending.owner;
  if (pending.attempt !== undefined) ready.attempt = pending.attempt;
  if (pending.notifyUri !== undefined) ready.notifyUri = pending.notifyUri;
  if (pending.why !== undefined) ready.why = pending.why;
  return ready;
}

/** Whether a pending placement's owner ran out of time to confirm it, so it may be reclaimed. */
export function isExpired(placement: Pick<Placement, 'state' | 'deadline'>, now: number): boolean {
  return placement.state === 'pending' && placement.deadline !== undefined && placement.deadline < now;
}
