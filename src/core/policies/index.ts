export type { Policy, SelectionRequest, TierRanker } from './policy.js';
export { candidates, eligible, preferRegion, rank } from './policy.js';
export { rankTop } from './rank-top.js';
export { available, hasRoom, lessLoaded, type Candidate, type PickContext, type Picker } from './picker.js';
export { policies, policyNames, type PolicyName } from './registry.js';
