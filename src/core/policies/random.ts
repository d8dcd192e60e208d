import type { Policy } from './policy.js';
import { candidates } from './policy.js';

/** Uniformly random among eligible servers (the coturn and SRS balancers' default). */
export const random: Policy = (servers, request, rand) => {
  const list = candidates(servers, request);
  if (list.length === 0) return undefined;
  return list[Math.min(list.length - 1, Math.floor(rand() * list.length))];
};
