/**
 * HAProxy `slowstart`: a backend that has just come back (health up, out of ejection) gets its
 * weight ramped linearly from 1 to full over `slowStartMs`, so a cold process (empty caches, JIT,
 * fresh pools) is not handed a full share at once. Pure: the caller passes `now`.
 *
 * Whole numbers while ramping (ceil of the linear share, at least 1), so smooth weighted
 * round-robin stays exact; monotone in `now`. A weight of 0 stays 0; slowStartMs 0 (or a ramp
 * that is over) gives the weight unchanged; a `now` before `recoveredAt` counts as the start.
 * A weight between 0 and 1 is returned unchanged (never raised above itself).
 */
export function slowStartWeight(weight: number, recoveredAt: number, now: number, slowStartMs: number): number {
  if (!(weight > 0) || !(slowStartMs > 0)) return weight;
  const elapsed = now - recoveredAt;
  if (elapsed >= slowStartMs) return weight;
  if (weight <= 1) return weight;
  const share = elapsed > 0 ? elapsed / slowStartMs : 0;
  return Math.min(weight, Math.max(1, Math.ceil(weight * share)));
}
