import { freeUnits } from '../capacity.js';
import type { Policy } from './policy.js';
import { candidates } from './policy.js';

/**
 * seed 000's policy: the server with the most free capacity. Ties go to the server listed first,
 * which keeps the choice deterministic for a given snapshot.
 *
 * The Redis store runs the same rule inside its reserve script (lua/reserve.lua) so the choice and
 * the reservation are one atomic step; the shared contract tests hold the two to the same answers.
 */
export const mostFreeCapacity: Policy = (servers, request) => {
  let best: (typeof servers)[number] | undefined;
  let bestFree = -Infinity;
  for (const s of candidates(servers, request)) {
    const free = freeUnits(s);
    if (free > bestFree) {
      best = s;
      bestFree = free;
    }
  }
  return best;
};
