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
export interface Policy {
  (servers: readonly Server[], request: SelectionRequest, random: () => number): Server | undefined;
  /**
   * The policy's order of preference within one tier of candidates (see rankTop): appends up to
   * `m` of `tier` to `out`, best first, drawing from `random` exactly as repeated calls of the
   * policy would. Without it, rankTop calls the policy once per pick.
   */
  rankTier?: TierRanker;
}

/** See Policy.rankTier. `tier` is every candidate of one region-preference tier, in listed order. */
export type TierRanker = (tier: readonly Server[], m: number, random: () => number, out: Server[]) => void;

/**
 * Whether a server may take a request: placeable, room for its units, not excluded. The per-server
 * check every policy runs; the same rule as `eligible`, without building an array.
 */
export function fits(s: Server, units: number, exclude: ReadonlySet<string> | undefined): boolean {
  return isPlaceable(s) && freeUnits(s) >= units && !exclude?.has(s.id);
}

/**
 * Region preference in one pass and no arrays: how many candidates there are, and whether they are
 * the region-local ones (`local`) or every eligible server. `candidateAt` finds one by position.
 */
export function countCandidates(servers: readonly Server[], request: SelectionRequest): { count: number; local: boolean } {
  const { units, region, exclude } = request;
  let all = 0;
  let local = 0;
  for (const s of servers) {
    if (!fits(s, units, exclude)) continue;
    all++;
    if (region && s.region === region) local++;
  }
  return local > 0 ? { count: local, local: true } : { count: all, local: false };
}

/** The `index`-th (0-based, listed order) candidate counted by `countCandidates`. */
export function candidateAt(servers: readonly Server[], request: SelectionRequest, local: boolean, index: number): Server | undefined {
  const { units, region, exclude } = request;
  let seen = 0;
  for (const s of servers) {
    if (local && s.region !== region) continue;
    if (!fits(s, units, exclude)) continue;
    if (seen++ === index) return s;
  }
  return undefined;
}

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
 *
 * Slow reference: one policy call per server, O(n²) per placement (tens of ms at 1,000 servers).
 * Use `rankTop` (rank-top.ts), which returns the same first k servers in O(n + k²); tests hold the
 * two to the same answers.
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
