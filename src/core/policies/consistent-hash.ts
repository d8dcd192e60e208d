import type { Candidate, Picker } from './picker.js';
import { available } from './picker.js';
import { twoRandomChoices } from './two-random-choices.js';

export interface ConsistentHashOptions {
  /** c in "Consistent Hashing with Bounded Loads": no backend takes more than c × its fair share. */
  loadFactor?: number;
  /** Ring points for a backend of weight 100 (the default weight); weight w gets w/100 of that, at least 1. */
  vnodes?: number;
}

/**
 * Consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam 2018). The ring is built
 * once per candidates array; each backend's points depend only on its id and weight, so adding
 * one backend moves only the keys that now land on it (~1/(N+1) of them), and a weight change
 * moves keys only to or from that backend.
 *
 * A key walks clockwise from its hash and takes the first backend with room whose inflight is under
 * its bound: ceil(loadFactor × (totalInflight + 1) × weight / totalWeight) — the +1 counts the
 * request being placed; with equal weights that is ceil(loadFactor × (total + 1) / n). Some backend
 * is always under its bound, so a hot key spills to its ring neighbours instead of piling up. If
 * every backend under its bound is full or excluded, the first with room on the walk is taken.
 * Load and weights are summed over backends of weight > 0, excluded ones included (their load is
 * real). No key → two random choices.
 */
export function consistentHash<T extends Candidate = Candidate>(options: ConsistentHashOptions = {}): Picker<T> {
  const loadFactor = options.loadFactor ?? 1.25;
  const vnodes = options.vnodes ?? 100;
  const noKey = twoRandomChoices<T>();
  let seen: readonly T[] | undefined;
  let ring: Ring | undefined;
  return {
    pick(candidates, ctx) {
      if (ctx.key === undefined) return noKey.pick(candidates, ctx);
      if (candidates !== seen || !ring) {
        seen = candidates;
        ring = buildRing(candidates, vnodes);
      }
      return walk(ring, candidates, ctx.key, ctx.exclude, loadFactor);
    },
  };
}

interface Ring {
  /** Point hashes, ascending. */
  hashes: Uint32Array;
  /** owners[p]: index in the candidates array of the backend owning point p. */
  owners: Uint32Array;
  /** Distinct backends on the ring. */
  members: number;
  /** Per-candidate stamp of the walk that last visited it: no allocation per pick. */
  visited: Uint32Array;
  walks: number;
}

function buildRing(candidates: readonly Candidate[], vnodes: number): Ring {
  const points: Array<{ h: number; owner: number; id: string }> = [];
  let members = 0;
  candidates.forEach((c, owner) => {
    if (!(c.weight > 0)) return;
    members++;
    const count = Math.max(1, Math.round((vnodes * c.weight) / 100));
    for (let i = 0; i < count; i++) points.push({ h: hash32(`${c.id}#${i}`), owner, id: c.id });
  });
  // Equal hashes ordered by id, so the ring does not depend on the array's order.
  points.sort((a, b) => a.h - b.h || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return {
    hashes: Uint32Array.from(points, (p) => p.h),
    owners: Uint32Array.from(points, (p) => p.owner),
    members,
    visited: new Uint32Array(candidates.length),
    walks: 0,
  };
}

function walk<T extends Candidate>(ring: Ring, candidates: readonly T[], key: string, exclude: ReadonlySet<string> | undefined, loadFactor: number): T | undefined {
  const { hashes, owners, visited } = ring;
  const len = hashes.length;
  if (len === 0) return undefined;
  let total = 0;
  let totalWeight = 0;
  for (const c of candidates) {
    if (!(c.weight > 0)) continue;
    total += c.inflight;
    totalWeight += c.weight;
  }
  const scaled = loadFactor * (total + 1); // multiplied before dividing keeps whole bounds exact
  const stamp = (ring.walks = (ring.walks + 1) >>> 0 || 1); // 0 = never visited
  let fallback: T | undefined;
  let distinct = 0;
  for (let step = 0, p = lowerBound(hashes, hash32(key)); step < len; step++, p++) {
    if (p === len) p = 0;
    const owner = owners[p]!;
    if (visited[owner] === stamp) continue;
    visited[owner] = stamp;
    const c = candidates[owner]!;
    if (available(c, exclude)) {
      if (c.inflight < Math.ceil((scaled * c.weight) / totalWeight)) return c;
      fallback ??= c;
    }
    if (++distinct === ring.members) break;
  }
  return fallback;
}

/** First position whose hash is >= h (len when none: the walk wraps to 0). */
function lowerBound(a: Uint32Array, h: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid]! < h) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * FNV-1a over the UTF-16 code units, then murmur3's final mix (FNV alone spreads near-identical
 * strings like "id#1", "id#2" poorly). Hand-written: it runs on every request, and a 32-bit
 * non-crypto hash needs no dependency or Buffer encoding.
 */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
