import { freeUnits } from '../capacity.js';
import type { Policy } from './policy.js';
import { candidateAt, countCandidates } from './policy.js';
import { Remaining } from './remaining.js';

/**
 * Power of two random choices: sample two eligible servers, keep the one with more free capacity.
 * Nearly as balanced as most-free-capacity, but concurrent callers working from the same snapshot
 * do not all herd onto one server.
 */
export const powerOfTwoChoices: Policy = (servers, request, rand) => {
  // A counting pass, then the two drawn candidates found by position: no arrays.
  const { count, local } = countCandidates(servers, request);
  if (count <= 1) return count === 1 ? candidateAt(servers, request, local, 0) : undefined;
  const [i, j] = drawTwo(count, rand);
  const a = candidateAt(servers, request, local, i)!;
  const b = candidateAt(servers, request, local, j)!;
  return freeUnits(b) > freeUnits(a) ? b : a;
};

/** Two distinct positions below n (n ≥ 2), uniformly. */
function drawTwo(n: number, rand: () => number): [number, number] {
  const i = Math.min(n - 1, Math.floor(rand() * n));
  let j = Math.min(n - 2, Math.floor(rand() * (n - 1)));
  if (j >= i) j += 1;
  return [i, j];
}

/** The policy's picks without replacement, drawing as repeated calls of the policy would. */
powerOfTwoChoices.rankTier = (tier, m, rand, out) => {
  const left = new Remaining(tier.length);
  for (let n = tier.length, picked = 0; n > 0 && picked < m; n--, picked++) {
    if (n === 1) {
      out.push(tier[left.at(0)]!);
      return;
    }
    const [ri, rj] = drawTwo(n, rand);
    const i = left.at(ri);
    const j = left.at(rj);
    const pick = freeUnits(tier[j]!) > freeUnits(tier[i]!) ? j : i;
    out.push(tier[pick]!);
    left.take(pick);
  }
};
