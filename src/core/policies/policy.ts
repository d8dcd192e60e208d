import { freeUnits, isPlaceable } from '../capacity.js';
import type { Server } from '../model.js';

/** What a placement asks of a pool. */
export interface SelectionRequest {
  /** Units the placement will hold; servers without that much free capacity are not eligible. */
  units: number;
  /** Preferred region: servers there win when any of them fits; otherwise any region will do. */
  region?: string;
  /** Servers not to choose (e.g. ones that already refused this placement). */
  exclude?: ReadonlySet<string>;
}

/**
 * A selection policy: a pure function from a pool snapshot and a request to a server. No I/O, no
 * clock; randomness is injected so tests are repeatable.
 */
export type Policy = (servers: readonly Server[], request: SelectionRequest, random: () => number) => Server | undefined;

/** Servers that may take the request: placeable, not excluded, with room for its units. */
export function eligible(servers: readonly Server[], request: SelectionRequest): Server[] {
  return servers.filter(
    (s) => isPlaceable(s) && !request.exclude?.has(s.id) && freeUnits(s) >= request.units,
  );
}

/** Region preference: the eligible servers in the requested region if any, else all eligible. */
export function preferRegion(candidates: Server[], region: string | undefined): Server[] {
  if (!region) return candidates;
  const local = candidates.filter((s) => s.region === region);
  return local.length > 0 ? local : candidates;
}

/** Eligible servers after region preference: what every policy chooses among. */
export function candidates(servers: readonly Server[], request: SelectionRequest): Server[] {
  return preferRegion(eligible(servers, request), request.region);
}

/**
 * The policy's choices in order of preference: its first pick, then its pick among the rest, and
 * so on. Stores that must re-check a choice atomically (Redis) try them in this order.
 */
export function rank(policy: Policy, servers: readonly Server[], request: SelectionRequest, random: () => number): Server[] {
  const order: Server[] = [];
  const exclude = new Set(request.exclude ?? []);
  for (;;) {
    const next = policy(servers, { ...request, exclude }, random);
    if (!next) return order;
    order.push(next);
    exclude.add(next.id);
  }
}
