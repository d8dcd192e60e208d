import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { freeUnits } from '../core/capacity.js';
import type { StateStore } from '../store/store.js';

/**
 * Switchboard's Prometheus metrics. One registry per running instance (tests start several in one
 * process). Pool and server state is read from the store's local view at scrape time, so the hot
 * path only increments counters.
 */
export function createMetrics(store: StateStore, pools: string[]) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'switchboard_' });

  const placements = new Counter({
    name: 'switchboard_placements_total',
    help: 'Placement requests by outcome: created, existing (same id asked again), failed.',
    labelNames: ['pool', 'outcome'] as const,
    registers: [registry],
  });
  const placementFailures = new Counter({
    name: 'switchboard_placement_failures_total',
    help: 'Failed placement attempts by reason: no_capacity, server_error, store_unavailable.',
    labelNames: ['pool', 'reason'] as const,
    registers: [registry],
  });
  const placementsLost = new Counter({
    name: 'switchboard_placements_lost_total',
    help: 'Placements released because their server went away, by reason.',
    labelNames: ['pool', 'reason'] as const,
    registers: [registry],
  });
  const placementDuration = new Histogram({
    name: 'switchboard_placement_duration_seconds',
    help: 'Time to place (reserve and create on the server), by outcome.',
    labelNames: ['pool', 'outcome'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const probeDuration = new Histogram({
    name: 'switchboard_probe_duration_seconds',
    help: 'Health probe latency, by result.',
    labelNames: ['pool', 'result'] as const,
    // Sub-millisecond buckets too: probes inside one data centre answer in a few hundred µs.
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const turnSelections = new Counter({
    name: 'switchboard_turn_selections_total',
    help: 'TURN servers handed out, by server and basis (load, random, only-healthy, no-healthy, ice-servers).',
    labelNames: ['server', 'basis'] as const,
    registers: [registry],
  });
  const notifications = new Counter({
    name: 'switchboard_notifications_total',
    help: 'Webhook notifications (room-lost) by result.',
    labelNames: ['result'] as const,
    registers: [registry],
  });

  new Gauge({
    name: 'switchboard_servers',
    help: 'Registered servers by health and admin state.',
    labelNames: ['pool', 'health', 'admin'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const pool of pools) {
        for (const s of store.listServers(pool)) this.inc({ pool, health: s.health.status, admin: s.adminState });
      }
    },
  });
  const perServer = (name: string, help: string, value: (s: ReturnType<StateStore['listServers']>[number]) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['pool', 'server'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const pool of pools) for (const s of store.listServers(pool)) this.set({ pool, server: s.id }, value(s));
      },
    });
  perServer('switchboard_server_capacity_units', 'Server capacity in units (consumers for SFUs).', (s) => s.capacity);
  perServer('switchboard_server_reserved_units', 'Units reserved by placements on the server.', (s) => s.reserved);
  perServer('switchboard_server_free_units', 'Free units: capacity − max(reserved, reported).', (s) => freeUnits(s));
  perServer('switchboard_server_healthy', '1 if the server is healthy, else 0.', (s) => (s.health.status === 'healthy' ? 1 : 0));
  new Gauge({
    name: 'switchboard_placements',
    help: 'Current placements (rooms, streams, ...) per pool.',
    labelNames: ['pool'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const pool of pools) this.set({ pool }, store.countPlacements(pool));
    },
  });
  new Gauge({
    name: 'switchboard_store_up',
    help: '1 if the state store accepts writes, else 0.',
    labelNames: ['store'] as const,
    registers: [registry],
    collect() {
      this.set({ store: store.kind }, store.available() ? 1 : 0);
    },
  });

  /** Metrics kept in other processes (the proxy's workers), appended at scrape time. */
  const extra: { source: (() => Promise<string>) | undefined } = { source: undefined };
  return { registry, extra, placements, placementFailures, placementsLost, placementDuration, probeDuration, notifications, turnSelections };
}

export type Metrics = ReturnType<typeof createMetrics>;

/** This instance's whole exposition, as `/metrics` serves it: its own registry, then its proxy workers'. */
export async function metricsText(metrics: Pick<Metrics, 'registry' | 'extra'>): Promise<string> {
  const own = await metrics.registry.metrics();
  const extra = metrics.extra.source ? await metrics.extra.source().catch(() => '') : '';
  return extra ? `${own}\n${extra}` : own;
}

/**
 * Only the named metrics of this instance (its own registry's, then its proxy workers'), in the
 * exposition format: what the dashboard's charts read every few seconds, without collecting the
 * process and runtime metrics a full scrape gathers.
 */
export async function metricsTextOf(metrics: Pick<Metrics, 'registry' | 'extra'>, names: readonly string[]): Promise<string> {
  const own = await Promise.all(names.filter((n) => metrics.registry.getSingleMetric(n) !== undefined).map((n) => metrics.registry.getSingleMetricAsString(n)));
  const extra = metrics.extra.source ? await metrics.extra.source().catch(() => '') : '';
  return [...own, extra].join('\n');
}
