import type { Server } from '../model.js';
import type { Policy, SelectionRequest } from './policy.js';
import { fits } from './policy.js';
import { policies, type PolicyName } from './registry.js';

/**
 * Up to `k` servers in the policy's order of preference: the same servers, in the same order and
 * drawing the same random numbers, as the first k of `rank` (the policy's pick, then its pick among
 * the rest, ...), in O(n + k²) instead of O(n²).
 *
 * The candidates are collected once, in one pass over `servers`: the eligible servers in the
 * requested region, and the other eligible ones. The region-local tier is ranked first; when it has
 * fewer than k servers the rest follow (as `rank` does once the local ones are all excluded).
 * Within a tier the policy's `rankTier` picks without re-filtering: random and
 * power-of-two-choices draw positions among the servers not yet picked, most-free-capacity keeps
 * the k best in one pass. A policy without `rankTier` is called once per pick (O(k·n)).
 *
 * Pure: no I/O, no clock; `random` is the only source of randomness.
 */
export function rankTop(
  policy: Policy | PolicyName,
  servers: readonly Server[],
  request: SelectionRequest,
  random: () => number,
  k: number,
): Server[] {
  const p = typeof policy === 'string' ? policies[policy] : policy;
  const out: Server[] = [];
  if (!(k > 0)) return out;
  const rankTier = p.rankTier;
  if (!rankTier) return pickRepeatedly(p, servers, request, random, k, out);

  const { units, region, exclude } = request;
  let local: Server[] | undefined;
  const rest: Server[] = [];
  for (const s of servers) {
    if (!fits(s, units, exclude)) continue;
    if (region && s.region === region) (local ??= []).push(s);
    else rest.push(s);
  }
  if (local) rankTier(local, k, random, out);
  if (out.length < k && rest.length > 0) rankTier(rest, k - out.length, random, out);
  return out;
}

function pickRepeatedly(policy: Policy, servers: readonly Server[], request: SelectionRequest, random: () => number, k: number, out: Server[]): Server[] {
  const exclude = new Set(request.exclude ?? []);
  const next = { ...request, exclude };
  while (out.length < k) {
    const s = policy(servers, next, random);
    if (!s) break;
    out.push(s);
    exclude.add(s.id);
  }
  return out;
}
