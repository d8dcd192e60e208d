import { freeUnits } from '../capacity.js';
import type { Policy } from './policy.js';
import { candidates } from './policy.js';

/**
 * Power of two random choices: sample two eligible servers, keep the one with more free capacity.
 * Nearly as balanced as most-free-capacity, but concurrent callers working from the same snapshot
 * do not all herd onto one server.
 */
export const powerOfTwoChoices: Policy = (servers, request, rand) => {
  const list = candidates(servers, request);
  if (list.length <= 1) return list[0];
  const i = Math.min(list.length - 1, Math.floor(rand() * list.length));
  let j = Math.min(list.length - 2, Math.floor(rand() * (list.length - 1)));
  if (j >= i) j += 1;
  const a = list[i]!;
  const b = list[j]!;
  return freeUnits(b) > freeUnits(a) ? b : a;
};
