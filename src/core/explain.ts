import { freeUnits, isPlaceable } from './capacity.js';
import type { Server } from './model.js';
import type { SelectionRequest } from './policies/policy.js';

/**
 * Why a placement went where it did, kept with the placement (both stores) and shown by the API and
 * the dashboard's log. Compact on purpose: counts, not lists, and at most WHY_RANKED candidates.
 *
 * Empty parts are left out rather than written empty: the Redis store round-trips the placement
 * through cjson in reserve.lua, which cannot tell an empty array from an empty object (`[]` comes
 * back as `{}`).
 */
export interface PlacementWhy {
  /** The policy used, by its config name (e.g. `most-free-capacity`). */
  policy: string;
  /** Servers in the pool, in the view the choice was made from. */
  servers: number;
  /** Of them, how many could take it: placeable, room for the units, not excluded. */
  eligible: number;
  /** Why the others could not, one reason each; zero counts left out, absent when none. */
  skipped?: { unhealthy?: number; draining?: number; full?: number; excluded?: number };
  /** Only when a region was asked for: `local` false means no server there could take it, so any region did. */
  region?: { wanted: string; local: boolean };
  /** The policy's first candidates, best first, at most WHY_RANKED, with their numbers then; absent when none. */
  ranked?: { id: string; free: number; capacity: number }[];
}

/** Candidates a PlacementWhy keeps. */
export const WHY_RANKED = 3;

type SkipReason = keyof NonNullable<PlacementWhy['skipped']>;
/** The order reasons are told in. */
const SKIP_REASONS: readonly SkipReason[] = ['draining', 'unhealthy', 'full', 'excluded'];

/**
 * Why a server cannot take a request, by the rules `fits` (policies/policy.ts) applies, the first
 * failing rule named: not healthy (`unknown` too), then not active (drain or maint), then too
 * little free, then excluded by the caller. Undefined exactly when `fits` is true.
 */
export function skipReason(s: Server, request: SelectionRequest): SkipReason | undefined {
  if (s.health.status !== 'healthy') return 'unhealthy';
  if (!isPlaceable(s)) return 'draining';
  if (freeUnits(s) < request.units) return 'full';
  if (request.exclude?.has(s.id)) return 'excluded';
  return undefined;
}

/**
 * Explains a choice made from `servers` for `request`, `ranked` being the policy's candidates best
 * first (rankTop's answer). Pure: one pass over the snapshot, no I/O.
 */
export function explainSelection(policy: string, servers: readonly Server[], request: SelectionRequest, ranked: readonly Server[]): PlacementWhy {
  let eligible = 0;
  let local = 0;
  const skipped: NonNullable<PlacementWhy['skipped']> = {};
  let anySkipped = false;
  for (const s of servers) {
    const reason = skipReason(s, request);
    if (reason === undefined) {
      eligible++;
      if (request.region && s.region === request.region) local++;
      continue;
    }
    skipped[reason] = (skipped[reason] ?? 0) + 1;
    anySkipped = true;
  }
  const why: PlacementWhy = { policy, servers: servers.length, eligible };
  if (anySkipped) why.skipped = skipped;
  if (request.region) why.region = { wanted: request.region, local: local > 0 };
  if (ranked.length > 0) why.ranked = ranked.slice(0, WHY_RANKED).map((s) => ({ id: s.id, free: freeUnits(s), capacity: s.capacity }));
  return why;
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/**
 * A stored placement's `why`, checked: undefined when absent or not one (placements written by
 * older versions have none), malformed parts dropped. Tolerant of what a cjson round trip may have
 * made of an empty list (`{}`).
 */
export function readWhy(value: unknown): PlacementWhy | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v.policy !== 'string' || !isCount(v.servers) || !isCount(v.eligible)) return undefined;
  const why: PlacementWhy = { policy: v.policy, servers: v.servers, eligible: v.eligible };
  if (typeof v.skipped === 'object' && v.skipped !== null) {
    const given = v.skipped as Record<string, unknown>;
    const skipped: NonNullable<PlacementWhy['skipped']> = {};
    for (const reason of SKIP_REASONS) {
      const n = given[reason];
      if (isCount(n) && n > 0) skipped[reason] = n;
    }
    if (Object.keys(skipped).length > 0) why.skipped = skipped;
  }
  if (typeof v.region === 'object' && v.region !== null) {
    const r = v.region as Record<string, unknown>;
    if (typeof r.wanted === 'string' && typeof r.local === 'boolean') why.region = { wanted: r.wanted, local: r.local };
  }
  if (Array.isArray(v.ranked)) {
    const ranked: NonNullable<PlacementWhy['ranked']> = [];
    for (const e of v.ranked as unknown[]) {
      if (typeof e !== 'object' || e === null) continue;
      const c = e as Record<string, unknown>;
      if (typeof c.id === 'string' && isCount(c.free) && isCount(c.capacity)) ranked.push({ id: c.id, free: c.free, capacity: c.capacity });
    }
    if (ranked.length > 0) why.ranked = ranked.slice(0, WHY_RANKED);
  }
  return why;
}

/** 1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, ..., 21st. */
export function ordinal(n: number): string {
  const teen = n % 100 >= 11 && n % 100 <= 13;
  const suffix = teen ? 'th' : (['th', 'st', 'nd', 'rd'][n % 10] ?? 'th');
  return `${n}${suffix}`;
}

/**
 * The explanation in one line for people, for the placement on `serverId`, e.g.
 * "most-free-capacity: ranked 1st of 3 eligible (of 5; 1 draining, 1 unhealthy skipped), 60 of 100
 * units free, in region eu". When the server was not among the ranked candidates (the Redis store's
 * script found them taken, or its view was behind, and chose on live numbers) it says so.
 */
export function whyText(why: PlacementWhy, serverId: string): string {
  const counts: Record<string, unknown> = why.skipped ?? {};
  const reasons = SKIP_REASONS.flatMap((r) => {
    const n = counts[r];
    return isCount(n) && n > 0 ? [`${n} ${r}`] : [];
  });
  const skipped = reasons.length > 0 ? `; ${reasons.join(', ')} skipped` : '';
  const ranked = Array.isArray(why.ranked) ? why.ranked : [];
  const at = ranked.findIndex((c) => c.id === serverId);
  const parts: string[] = [];
  if (at >= 0) {
    parts.push(`ranked ${ordinal(at + 1)} of ${why.eligible} eligible (of ${why.servers}${skipped})`);
    const { free, capacity } = ranked[at]!;
    // Pools without a unit limit register a huge capacity: not worth saying.
    if (capacity < 1e9) parts.push(`${free} of ${capacity} units free`);
  } else {
    const what = ranked.length > 0 ? 'the ranked candidates had filled up' : 'none was eligible in the view';
    parts.push(`${what}; taken on live numbers (${why.eligible} eligible of ${why.servers}${skipped})`);
  }
  if (why.region) parts.push(why.region.local ? `in region ${why.region.wanted}` : `none in region ${why.region.wanted} could take it, so any region`);
  return `${why.policy}: ${parts.join(', ')}`;
}
