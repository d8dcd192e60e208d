import type { Policy } from './policy.js';
import { candidateAt, countCandidates } from './policy.js';
import { Remaining } from './remaining.js';

/** Uniformly random among eligible servers (the coturn and SRS balancers' default). */
export const random: Policy = (servers, request, rand) => {
  // Two passes over the snapshot (count, then find the drawn one), no arrays.
  const { count, local } = countCandidates(servers, request);
  if (count === 0) return undefined;
  return candidateAt(servers, request, local, Math.min(count - 1, Math.floor(rand() * count)));
};

/** Uniform draws without replacement, in the order repeated calls of the policy would make them. */
random.rankTier = (tier, m, rand, out) => {
  const left = new Remaining(tier.length);
  for (let n = tier.length, picked = 0; n > 0 && picked < m; n--, picked++) {
    const i = left.at(Math.min(n - 1, Math.floor(rand() * n)));
    out.push(tier[i]!);
    left.take(i);
  }
};
