import type { Candidate, Picker } from './picker.js';
import { available, lessLoaded } from './picker.js';

/**
 * The backend with the lowest inflight / weight. Ties go round-robin, as HAProxy's leastconn does:
 * each scan starts just after the last choice, so idle equal backends share the work instead of
 * the first listed taking every request of a quiet period.
 */
export function leastConnections<T extends Candidate = Candidate>(): Picker<T> {
  let next = 0;
  return {
    pick(candidates, ctx) {
      const n = candidates.length;
      let best: T | undefined;
      let bestAt = 0;
      for (let k = 0; k < n; k++) {
        const i = (next + k) % n;
        const c = candidates[i]!;
        if (!available(c, ctx.exclude)) continue;
        if (!best || lessLoaded(c, best)) {
          best = c;
          bestAt = i;
        }
      }
      if (best) next = (bestAt + 1) % n;
      return best;
    },
  };
}
