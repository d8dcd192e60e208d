import { mostFreeCapacity } from './most-free-capacity.js';
import type { Policy } from './policy.js';
import { powerOfTwoChoices } from './power-of-two-choices.js';
import { random } from './random.js';

/** Policies by the name used in config and docs. */
export const policies = {
  'most-free-capacity': mostFreeCapacity,
  random,
  'power-of-two-choices': powerOfTwoChoices,
} as const satisfies Record<string, Policy>;

export type PolicyName = keyof typeof policies;
export const policyNames = Object.keys(policies) as PolicyName[];
