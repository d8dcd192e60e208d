import type { Candidate, Picker } from './picker.js';
import { available } from './picker.js';

/**
 * nginx's smooth weighted round-robin: each pick adds every eligible backend's weight to its
 * current weight, chooses the highest (first listed on ties, as nginx) and takes the total off it.
 * Weights {5,1,1} give a,a,b,a,c,a,a: the heavy backend's turns are spread out, not bunched.
 *
 * Current weights are kept per id, so a reordered or grown array keeps the rotation; ids gone from
 * a new array are forgotten. Full or excluded backends sit the pick out (nginx skips them too).
 */
export function weightedRoundRobin<T extends Candidate = Candidate>(): Picker<T> {
  const current = new Map<string, number>();
  let seen: readonly T[] | undefined;
  return {
    pick(candidates, ctx) {
      if (candidates !== seen) {
        seen = candidates;
        forgetAbsent(current, candidates);
      }
      let total = 0;
      let best: T | undefined;
      let bestCurrent = -Infinity;
      for (const c of candidates) {
        if (!available(c, ctx.exclude)) continue;
        const cw = (current.get(c.id) ?? 0) + c.weight;
        current.set(c.id, cw);
        total += c.weight;
        if (cw > bestCurrent) {
          best = c;
          bestCurrent = cw;
        }
      }
      if (best) current.set(best.id, bestCurrent - total);
      return best;
    },
  };
}

function forgetAbsent(current: Map<string, number>, candidates: readonly Candidate[]): void {
  if (current.size === 0) return;
  const ids = new Set(candidates.map((c) => c.id));
  for (const id of current.keys()) if (!ids.has(id)) current.delete(id);
}
