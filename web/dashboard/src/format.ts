/** Capacities this large mean "no limit" (TURN, origins and HTTP backends register 1e12). */
export const UNBOUNDED = 1e11;

export const isBounded = (capacity: number) => capacity > 0 && capacity < UNBOUNDED;

/** What a pool's capacity and placements count in. Unknown pools (HTTP) get generic words. */
const nouns: Record<string, { units: string; placements: string; placement: string }> = {
  rooms: { units: 'consumers', placements: 'rooms', placement: 'room' },
  turn: { units: 'allocations', placements: 'allocations', placement: 'allocation' },
  origins: { units: 'streams', placements: 'streams', placement: 'stream' },
};
export const poolNouns = (pool: string) => nouns[pool] ?? { units: 'units', placements: 'sticky keys', placement: 'key' };

const nf = new Intl.NumberFormat('en', { maximumFractionDigits: 1 });
const compact = new Intl.NumberFormat('en', { notation: 'compact', maximumFractionDigits: 1 });

export function num(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '–';
  return Math.abs(n) >= 100_000 ? compact.format(n) : nf.format(n);
}

/** "4s", "2m 05s", "3h 12m", "5d 2h": how long ago, to the second. */
export function age(fromIso: string | null | undefined, now: number): string {
  if (!fromIso) return '–';
  const t = Date.parse(fromIso);
  if (!Number.isFinite(t)) return '–';
  const s = Math.max(0, Math.floor((now - t) / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

export function clock(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
}

export function pct(used: number, capacity: number): number {
  if (!isBounded(capacity)) return 0;
  return Math.max(0, Math.min(100, (used / capacity) * 100));
}

/** Level of a utilisation: the bar's colour. */
export const loadLevel = (p: number) => (p >= 90 ? 'crit' : p >= 70 ? 'warn' : 'ok');
