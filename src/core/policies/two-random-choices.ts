import type { Candidate, Picker } from './picker.js';
import { available, lessLoaded } from './picker.js';

/**
 * Power of two random choices on live load: sample two distinct backends with room, keep the one
 * with the lower inflight / weight (the first drawn on ties). Close to least-connections in
 * balance, but several proxy processes with stale views do not all herd onto the same backend.
 * Stateless; a factory only for symmetry with the other pickers.
 */
export function twoRandomChoices<T extends Candidate = Candidate>(): Picker<T> {
  return {
    pick(candidates, ctx) {
      // A counting pass, then the two drawn found by position: no arrays on the hot path.
      let count = 0;
      for (const c of candidates) if (available(c, ctx.exclude)) count++;
      if (count <= 1) return count === 1 ? nth(candidates, ctx.exclude, 0) : undefined;
      const i = Math.min(count - 1, Math.floor(ctx.random() * count));
      let j = Math.min(count - 2, Math.floor(ctx.random() * (count - 1)));
      if (j >= i) j += 1;
      const a = nth(candidates, ctx.exclude, i)!;
      const b = nth(candidates, ctx.exclude, j)!;
      return lessLoaded(b, a) ? b : a;
    },
  };
}

/** The index-th (0-based, listed order) available candidate. */
function nth<T extends Candidate>(candidates: readonly T[], exclude: ReadonlySet<string> | undefined, index: number): T | undefined {
  let seen = 0;
  for (const c of candidates) {
    if (!available(c, exclude)) continue;
    if (seen++ === index) return c;
  }
  return undefined;
}
