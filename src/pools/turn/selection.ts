import { isPlaceable } from '../../core/capacity.js';
import type { Server } from '../../core/model.js';

export interface TurnChoice {
  server: Server;
  /** How it was chosen: by load, at random, or among all because none is healthy. */
  basis: 'load' | 'random' | 'only-healthy' | 'no-healthy';
}

/**
 * The coturn balancer's choice, pure: one healthy server → it; load data for the healthy ones →
 * the lowest (ties at random); otherwise random among the healthy; none healthy → random among
 * all (flagged, so the answer can say so).
 */
export function chooseTurnServer(servers: readonly Server[], load: ReadonlyMap<string, number>, random: () => number): TurnChoice | undefined {
  if (servers.length === 0) return undefined;
  const pick = <T>(list: readonly T[]): T => list[Math.min(list.length - 1, Math.floor(random() * list.length))]!;
  const healthy = servers.filter(isPlaceable);
  if (healthy.length === 0) return { server: pick(servers), basis: 'no-healthy' };
  if (healthy.length === 1) return { server: healthy[0]!, basis: 'only-healthy' };
  const measured = healthy.filter((s) => load.has(s.id));
  if (measured.length > 0) {
    const lowest = Math.min(...measured.map((s) => load.get(s.id)!));
    return { server: pick(measured.filter((s) => load.get(s.id) === lowest)), basis: 'load' };
  }
  return { server: pick(healthy), basis: 'random' };
}

/** The servers with `load` as their reported units, so the capacity-based policies weigh it. */
export function withLoad(servers: readonly Server[], load: ReadonlyMap<string, number>): Server[] {
  return servers.map((s) => {
    const units = load.get(s.id);
    return units === undefined ? s : { ...s, reported: { ...s.reported, units } };
  });
}
