import { freeUnits, isPlaceable } from '../capacity.js';
import type { Server } from '../model.js';
import type { Policy } from './policy.js';

/**
 * seed 000's policy: the server with the most free capacity. Ties go to the server listed first,
 * which keeps the choice deterministic for a given snapshot.
 *
 * The Redis store runs the same rule inside its reserve script (lua/reserve.lua) so the choice and
 * the reservation are one atomic step; the shared contract tests hold the two to the same answers.
 */
export const mostFreeCapacity: Policy = (servers, request) => {
  // One pass, no arrays: the best server overall and the best in the requested region.
  const { units, region, exclude } = request;
  let best: Server | undefined;
  let bestFree = -Infinity;
  let bestLocal: Server | undefined;
  let bestLocalFree = -Infinity;
  for (const s of servers) {
    if (!isPlaceable(s)) continue;
    const free = freeUnits(s);
    if (free < units || exclude?.has(s.id)) continue;
    if (free > bestFree) {
      best = s;
      bestFree = free;
    }
    if (region && s.region === region && free > bestLocalFree) {
      bestLocal = s;
      bestLocalFree = free;
    }
  }
  return bestLocal ?? best;
};

/** Beyond this many picks a stable sort beats keeping a sorted top-k buffer. */
const TOP_BY_SORT = 16;

/** The m servers with the most free units, best first, ties in listed order: one pass, O(n·m) at worst. */
mostFreeCapacity.rankTier = (tier, m, _random, out) => {
  if (m > TOP_BY_SORT) {
    const sorted = tier.map((s) => ({ s, free: freeUnits(s) })).sort((a, b) => b.free - a.free); // stable
    for (let i = 0; i < sorted.length && i < m; i++) out.push(sorted[i]!.s);
    return;
  }
  const top: Server[] = [];
  const frees: number[] = [];
  for (const s of tier) {
    const free = freeUnits(s);
    let p = frees.length;
    if (p === m) {
      if (free <= frees[m - 1]!) continue;
      p = m - 1; // the last one drops out
    } else {
      frees.push(free);
      top.push(s);
    }
    // Insertion: after every server at least as free, so ties keep listed order.
    while (p > 0 && frees[p - 1]! < free) {
      frees[p] = frees[p - 1]!;
      top[p] = top[p - 1]!;
      p--;
    }
    frees[p] = free;
    top[p] = s;
  }
  for (const s of top) out.push(s);
};
