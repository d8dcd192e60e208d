import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { PoolBalancer } from './balancer.js';
import type { ExchangeRecord } from './connection.js';
import type { Upstream } from './upstream.js';

const CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;
const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Counts kept per backend (and per pool for the proxy's own answers), read at scrape time. */
export class ExchangeStats {
  readonly codes = [0, 0, 0, 0, 0];
  /** Non-cumulative bucket counts; the last one is +Inf. */
  readonly buckets = new Float64Array(BUCKETS.length + 1);
  sum = 0;
  count = 0;

  constructor(
    readonly pool: string,
    readonly backend: string,
  ) {}

  add(status: number, seconds: number): void {
    this.codes[Math.min(Math.max(Math.floor(status / 100), 1), 5) - 1]!++;
    let i = 0;
    while (i < BUCKETS.length && seconds > BUCKETS[i]!) i++;
    this.buckets[i]!++;
    this.sum += seconds;
    this.count++;
  }
}

type Value = { value: number; labels: Record<string, string | number>; metricName?: string };

/**
 * A metric prom-client's registry (and its cluster aggregator) reads through `get()`: the proxy
 * counts in plain numbers on the hot path — prom-client's `labels().inc()`/`observe()` hash their
 * labels on every call, measured at ~5 % of the proxy's CPU — and builds the series at scrape time.
 */
function scrapeTimeMetric(registry: Registry, name: string, help: string, type: 'counter' | 'histogram', values: () => Value[]): void {
  registry.registerMetric({
    name,
    help,
    type,
    aggregator: 'sum',
    get: async () => ({ name, help, type, aggregator: 'sum', values: values() }),
  } as never);
}

/**
 * Per-backend proxy metrics and the access log. Gauges are computed at scrape time from the
 * balancers.
 */
export class ProxyMetrics {
  private readonly retries: Counter<'pool'>;
  private readonly own = new Map<string, ExchangeStats>();
  private readonly stats = new WeakMap<Upstream, ExchangeStats>();
  /** Every backend's stats, for scraping (a WeakMap cannot be iterated). */
  private readonly all = new Set<ExchangeStats>();

  constructor(
    registry: Registry,
    balancers: () => Iterable<PoolBalancer>,
    connections: () => number,
    private readonly logger: Logger | undefined,
    private readonly sampleRate: number,
  ) {
    const series = () => [...this.all, ...this.own.values()];
    scrapeTimeMetric(registry, 'switchboard_proxy_requests_total', 'Proxied requests by pool, backend and status class; backend "" = answered by the proxy itself.', 'counter', () =>
      series().flatMap((s) => CLASSES.map((code, i) => ({ value: s.codes[i]!, labels: { pool: s.pool, backend: s.backend, code } }))),
    );
    scrapeTimeMetric(registry, 'switchboard_proxy_request_duration_seconds', 'From the complete request head to the end of the answer, by pool and backend.', 'histogram', () =>
      [...this.all].flatMap((s) => {
        const labels = { pool: s.pool, backend: s.backend };
        const out: Value[] = [];
        let cumulative = 0;
        for (let i = 0; i <= BUCKETS.length; i++) {
          cumulative += s.buckets[i]!;
          out.push({ metricName: 'switchboard_proxy_request_duration_seconds_bucket', labels: { ...labels, le: i < BUCKETS.length ? BUCKETS[i]! : '+Inf' }, value: cumulative });
        }
        out.push({ metricName: 'switchboard_proxy_request_duration_seconds_sum', labels, value: s.sum });
        out.push({ metricName: 'switchboard_proxy_request_duration_seconds_count', labels, value: s.count });
        return out;
      }),
    );
    this.retries = new Counter({ name: 'switchboard_proxy_retries_total', help: 'Requests sent to another backend after a connect failure.', labelNames: ['pool'] as const, registers: [registry] });
    new Gauge({
      name: 'switchboard_proxy_active_requests',
      help: 'Requests in flight plus open WebSockets, by pool and backend.',
      labelNames: ['pool', 'backend'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const b of balancers()) for (const u of b.upstreams.values()) this.set({ pool: b.name, backend: u.id }, u.inflight);
      },
    });
    new Gauge({
      name: 'switchboard_proxy_queue_length',
      help: 'Requests waiting for a backend under its maxconn, by pool.',
      labelNames: ['pool'] as const,
      registers: [registry],
      collect() {
        for (const b of balancers()) this.set({ pool: b.name }, b.queueLength);
      },
    });
    new Gauge({
      name: 'switchboard_proxy_ejections',
      help: 'Outlier ejections since start, by pool (passive health: consecutive 5xx or connect failures).',
      labelNames: ['pool'] as const,
      registers: [registry],
      collect() {
        for (const b of balancers()) this.set({ pool: b.name }, b.ejections);
      },
    });
    new Gauge({
      name: 'switchboard_proxy_client_connections',
      help: 'Client connections open on this process.',
      registers: [registry],
      collect() {
        this.set(connections());
      },
    });
  }

  record(r: ExchangeRecord): void {
    const u = r.upstream;
    if (u) {
      let s = this.stats.get(u);
      if (!s) {
        s = new ExchangeStats(r.pool, u.id);
        this.stats.set(u, s);
        this.all.add(s);
      }
      s.add(r.status, r.seconds);
    } else {
      let s = this.own.get(r.pool);
      if (!s) this.own.set(r.pool, (s = new ExchangeStats(r.pool, '')));
      s.codes[Math.min(Math.max(Math.floor(r.status / 100), 1), 5) - 1]!++;
    }
    // Access log: a sample of requests, and always the ones that failed.
    if (this.logger && (r.error !== undefined || r.status >= 500 || (this.sampleRate > 0 && Math.random() < this.sampleRate))) {
      this.logger.info(
        { access: true, pool: r.pool, route: r.route, backend: u?.id, method: r.method, url: r.target, status: r.status, ms: Math.round(r.seconds * 1e4) / 10, client: r.client, ...(r.error ? { error: r.error } : {}) },
        'proxy request',
      );
    }
  }

  /**
   * A backend left: its series go with it. Answers still under way on it count into stats that
   * are no longer scraped (never a series of a backend that is gone). A backend that moved
   * (`successor`, the same id at a new address) keeps its series: the counters carry on.
   */
  forget(u: Upstream, successor?: Upstream): void {
    let s = this.stats.get(u);
    if (successor) {
      if (s) this.stats.set(successor, s);
      return;
    }
    if (s) this.all.delete(s);
    else this.stats.set(u, (s = new ExchangeStats('', u.id)));
  }

  retried(pool: string): void {
    this.retries.inc({ pool });
  }
}
