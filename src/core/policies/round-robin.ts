import type { Candidate, Picker } from './picker.js';
import { available } from './picker.js';

/**
 * Plain rotation over the candidates with room; weights are ignored except that 0 takes nothing.
 * A full or excluded backend is skipped without losing its turn for good: the rotation goes on
 * from the one chosen, so over time every backend with room gets the same share.
 */
export function roundRobin<T extends Candidate = Candidate>(): Picker<T> {
  let next = 0; // position to start the next scan from; kept across array changes (mod length)
  return {
    pick(candidates, ctx) {
      const n = candidates.length;
      for (let k = 0; k < n; k++) {
        const i = (next + k) % n;
        const c = candidates[i]!;
        if (!available(c, ctx.exclude)) continue;
        next = (i + 1) % n;
        return c;
      }
      return undefined;
    },
  };
}
