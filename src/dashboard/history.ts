import { parsePrometheusText, type Sample } from '../metrics/text-format.js';
import type { StatsSample } from './types.js';

export type { StatsSample } from './types.js';

/** The metrics the charts read (histograms by their family name). */
export const CHART_METRICS = [
  'switchboard_placements_total',
  'switchboard_placement_failures_total',
  'switchboard_probe_duration_seconds',
  'switchboard_proxy_requests_total',
  'switchboard_proxy_request_duration_seconds',
] as const;

/** The cumulative numbers a sample is the difference of. */
export interface Totals {
  placements: Map<string, number>;
  failures: Map<string, number>;
  /** Cumulative bucket counts by upper bound. */
  probeBuckets: Map<number, number>;
  proxy: { requests: number; buckets: Map<number, number> } | null;
}

const add = (m: Map<string, number>, k: string, v: number) => m.set(k, (m.get(k) ?? 0) + v);
const addN = (m: Map<number, number>, k: number, v: number) => m.set(k, (m.get(k) ?? 0) + v);

/** The totals the charts need, from a `/metrics` exposition (series summed over the other labels). */
export function totals(samples: readonly Sample[]): Totals {
  const t: Totals = { placements: new Map(), failures: new Map(), probeBuckets: new Map(), proxy: null };
  for (const s of samples) {
    if (!Number.isFinite(s.value) && s.labels.le === undefined) continue;
    switch (s.name) {
      case 'switchboard_placements_total':
        if (s.labels.outcome === 'created') add(t.placements, s.labels.pool ?? '', s.value);
        break;
      case 'switchboard_placement_failures_total':
        add(t.failures, s.labels.reason ?? 'unknown', s.value);
        break;
      case 'switchboard_probe_duration_seconds_bucket':
        addN(t.probeBuckets, le(s.labels.le), s.value);
        break;
      case 'switchboard_proxy_requests_total':
        t.proxy ??= { requests: 0, buckets: new Map() };
        t.proxy.requests += s.value;
        break;
      case 'switchboard_proxy_request_duration_seconds_bucket':
        t.proxy ??= { requests: 0, buckets: new Map() };
        addN(t.proxy.buckets, le(s.labels.le), s.value);
        break;
    }
  }
  return t;
}

/**
 * `totals` of an exposition text. The proxy counts as present as soon as its metric family is
 * there, before its first request (the family is declared with no series yet): its charts show 0.
 */
export function totalsOf(text: string): Totals {
  const t = totals(parsePrometheusText(text));
  if (!t.proxy && text.includes('# TYPE switchboard_proxy_requests_total ')) t.proxy = { requests: 0, buckets: new Map() };
  return t;
}

const le = (text: string | undefined) => (text === undefined || text === '+Inf' ? Infinity : Number(text));

/** A counter's increase; a smaller value means the process behind it restarted (counts from 0). */
const increase = (now: number, before: number | undefined) => (before === undefined || now < before ? now : now - before);

/**
 * The q-quantile of the observations between two cumulative bucket sets, interpolated inside the
 * bucket as Prometheus's `histogram_quantile` does; null with no observation. In the unit of the
 * bounds.
 */
export function quantile(q: number, now: Map<number, number>, before: Map<number, number> | undefined): number | null {
  const bounds = [...now.keys()].sort((a, b) => a - b);
  const counts = bounds.map((b) => increase(now.get(b)!, before?.get(b)));
  const total = counts[counts.length - 1] ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (let i = 0; i < bounds.length; i++) {
    const upper = bounds[i]!;
    const count = counts[i]!;
    if (count >= rank) {
      // Past the last finite bound: the last finite bound is all that is known.
      if (upper === Infinity) return lower;
      const inBucket = count - below;
      return inBucket <= 0 ? upper : lower + ((upper - lower) * (rank - below)) / inBucket;
    }
    lower = upper === Infinity ? lower : upper;
    below = count;
  }
  return lower;
}

const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;

/** The chart point between two totals `seconds` apart. Pure. */
export function summarize(at: number, seconds: number, now: Totals, before: Totals | undefined): StatsSample {
  const rates = (cur: Map<string, number>, prev: Map<string, number> | undefined) => {
    const out: Record<string, number> = {};
    for (const [k, v] of cur) out[k] = round(increase(v, prev?.get(k)) / seconds);
    return out;
  };
  const ms = (v: number | null) => (v === null ? null : round(v * 1000, 3));
  return {
    at: new Date(at).toISOString(),
    placementsPerSecond: rates(now.placements, before?.placements),
    failuresPerSecond: rates(now.failures, before?.failures),
    probeLatencyMs: { p50: ms(quantile(0.5, now.probeBuckets, before?.probeBuckets)), p99: ms(quantile(0.99, now.probeBuckets, before?.probeBuckets)) },
    proxy: now.proxy
      ? {
          requestsPerSecond: round(increase(now.proxy.requests, before?.proxy?.requests) / seconds),
          p99Ms: ms(quantile(0.99, now.proxy.buckets, before?.proxy?.buckets)),
        }
      : null,
  };
}

export interface StatsHistoryOptions {
  /** One sample this often (ms). */
  intervalMs: number;
  /** Samples kept (the charts' width). */
  keep: number;
}

/**
 * The charts' data: every `intervalMs` it reads this instance's metrics as text (`CHART_METRICS` of
 * its own registry, and its proxy workers', as Prometheus scrapes them) and keeps the rates of the last
 * `keep` intervals. Per instance: with several instances, each shows its own traffic (Prometheus
 * and the Grafana dashboard in deploy/ show the sum).
 */
export class StatsHistory {
  readonly options: StatsHistoryOptions;
  private timer: NodeJS.Timeout | undefined;
  private last: { at: number; totals: Totals } | undefined;
  private ring: StatsSample[] = [];
  private running = false;

  constructor(
    private readonly read: () => Promise<string>,
    private readonly onSample: (sample: StatsSample) => void,
    options: Partial<StatsHistoryOptions> = {},
    private readonly log?: { warn(obj: object, msg: string): void },
  ) {
    this.options = { intervalMs: 5_000, keep: 180, ...options };
  }

  start(): void {
    if (this.timer) return;
    void this.tick();
    this.timer = setInterval(() => void this.tick(), this.options.intervalMs).unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  samples(): StatsSample[] {
    return this.ring.slice();
  }

  private async tick(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      const text = await this.read();
      const at = Date.now();
      const now = totalsOf(text);
      const last = this.last;
      this.last = { at, totals: now };
      if (!last) return;
      const sample = summarize(at, Math.max(0.001, (at - last.at) / 1000), now, last.totals);
      this.ring.push(sample);
      if (this.ring.length > this.options.keep) this.ring.shift();
      this.onSample(sample);
    } catch (err) {
      // Never out of a timer: the next tick tries again.
      this.log?.warn({ err }, 'dashboard: reading the metrics for the charts failed');
    } finally {
      this.running = false;
    }
  }
}
