export type { Policy, SelectionRequest, TierRanker } from './policy.js';
export { candidates, eligible, preferRegion, rank } from './policy.js';
export { rankTop } from './rank-top.js';
export { policies, policyNames, type PolicyName } from './registry.js';
