import { readFileSync } from 'node:fs';
import { AggregatorRegistry, Registry, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import { beforeAll, describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/metrics/registry.js';
import type { PoolBalancer } from '../../src/proxy/balancer.js';
import { ProxyMetrics } from '../../src/proxy/metrics.js';
import { registerMediaMetrics } from '../../src/proxy/streaming/metrics.js';
import type { Upstream } from '../../src/proxy/upstream.js';
import { MemoryStore } from '../../src/store/memory.js';

/**
 * docs/metrics.md and deploy/grafana/switchboard.json against the metrics the code really
 * registers: every metric is documented with its type and labels, and every `switchboard_*` name
 * (and every label a query filters or groups by) in the docs and the dashboard exists.
 */
const root = new URL('../../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), 'utf8');

interface MetricInfo {
  name: string;
  type: string;
  labels: Set<string>;
}
type Catalog = Map<string, MetricInfo>;

/** Labels Prometheus adds to every series of a target. */
const TARGET_LABELS = ['instance', 'job'];
const SERIES_SUFFIXES = ['_bucket', '_sum', '_count'];

async function catalog(...registries: Registry[]): Promise<Catalog> {
  const out: Catalog = new Map();
  for (const registry of registries) {
    for (const m of (await registry.getMetricsAsJSON()) as MetricObjectWithValues<MetricValue<string>>[]) {
      const declared = (registry.getSingleMetric(m.name) as { labelNames?: readonly string[] } | undefined)?.labelNames;
      // The proxy's scrape-time metrics declare no label names: their series tell them.
      const labels = new Set<string>(declared ?? m.values.flatMap((v) => Object.keys(v.labels)).filter((l) => l !== 'le'));
      out.set(m.name, { name: m.name, type: String(m.type), labels });
    }
  }
  return out;
}

/** The metric a name in a query refers to: itself, or the histogram whose `_bucket`/`_sum`/`_count` series it is. */
function resolve(cat: Catalog, token: string): { metric: MetricInfo; bucket: boolean } | undefined {
  const direct = cat.get(token);
  if (direct) return { metric: direct, bucket: false };
  for (const suffix of SERIES_SUFFIXES) {
    const base = cat.get(token.slice(0, -suffix.length));
    if (token.endsWith(suffix) && base && (base.type === 'histogram' || base.type === 'summary')) return { metric: base, bucket: suffix === '_bucket' };
  }
  return undefined;
}

const NAME = /\bswitchboard_[a-z0-9_]+/g;
const unquote = (s: string) => s.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/'(?:[^'\\]|\\.)*'/g, "''");

/**
 * Problems in PromQL text: unknown metric names, matchers on labels the metric does not have,
 * grouping (`by`, `without`, `on`, `ignoring`, `group_*`) and legend labels that no metric of the
 * expression has.
 */
function checkQuery(cat: Catalog, expr: string, where: string, legend = ''): string[] {
  const problems: string[] = [];
  const text = unquote(expr);
  const allowed = new Set(TARGET_LABELS);
  for (const token of expr.match(NAME) ?? []) {
    const found = resolve(cat, token);
    if (!found) {
      problems.push(`${where}: unknown metric ${token}`);
      continue;
    }
    for (const l of found.metric.labels) allowed.add(l);
    if (found.bucket) allowed.add('le');
  }
  for (const m of text.matchAll(/\b(switchboard_[a-z0-9_]+)\s*\{([^}]*)\}/g)) {
    const found = resolve(cat, m[1]!);
    if (!found) continue;
    for (const l of m[2]!.matchAll(/([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)/g)) {
      const label = l[1]!;
      if (!found.metric.labels.has(label) && !TARGET_LABELS.includes(label) && !(found.bucket && label === 'le')) {
        problems.push(`${where}: ${m[1]} has no label "${label}" (labels: ${[...found.metric.labels].join(', ') || 'none'})`);
      }
    }
  }
  for (const m of text.matchAll(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g)) {
    for (const label of m[1]!.split(',').map((s) => s.trim()).filter(Boolean)) {
      if (!allowed.has(label)) problems.push(`${where}: grouping label "${label}" is on none of the expression's metrics`);
    }
  }
  for (const m of legend.matchAll(/\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g)) {
    if (!allowed.has(m[1]!)) problems.push(`${where}: legend label "${m[1]}" is on none of the expression's metrics`);
  }
  return problems;
}

/** The documented metrics: table rows `| \`name\` | type | \`label\`, ... | meaning |`. */
function documented(doc: string): Map<string, { type: string; labels: Set<string> }> {
  const out = new Map<string, { type: string; labels: Set<string> }>();
  for (const m of doc.matchAll(/^\| `(switchboard_[a-z0-9_]+)` \| ([a-z]+) \|([^|]*)\|/gm)) {
    out.set(m[1]!, { type: m[2]!, labels: new Set([...m[3]!.matchAll(/`([^`]+)`/g)].map((l) => l[1]!)) });
  }
  return out;
}

/** Problems between the metrics page and the registries. */
function checkDoc(cat: Catalog, doc: string): string[] {
  const problems: string[] = [];
  const rows = documented(doc);
  for (const metric of cat.values()) {
    const row = rows.get(metric.name);
    if (!row) {
      problems.push(`docs/metrics.md: ${metric.name} (${metric.type}) is not documented`);
      continue;
    }
    if (row.type !== metric.type) problems.push(`docs/metrics.md: ${metric.name} is a ${metric.type}, documented as ${row.type}`);
    const want = [...metric.labels].sort().join(', ');
    const got = [...row.labels].sort().join(', ');
    if (want !== got) problems.push(`docs/metrics.md: ${metric.name} has labels [${want}], documented as [${got}]`);
  }
  for (const token of new Set(doc.match(NAME) ?? [])) {
    if (!resolve(cat, token)) problems.push(`docs/metrics.md: names ${token}, which no registry exposes`);
  }
  for (const [i, block] of [...doc.matchAll(/```(?:promql|yaml)\n([\s\S]*?)```/g)].entries()) {
    problems.push(...checkQuery(cat, block[1]!, `docs/metrics.md code block ${i + 1}`));
  }
  return problems;
}

interface Panel {
  id?: number;
  type: string;
  title?: string;
  gridPos?: { x: number; y: number; w: number; h: number };
  datasource?: { type?: string; uid?: string };
  targets?: { expr?: string; legendFormat?: string; datasource?: { uid?: string } }[];
  panels?: Panel[];
}
interface Dashboard {
  schemaVersion: number;
  uid: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query?: unknown; definition?: string; datasource?: { uid?: string } }[] };
}

/** Problems in the Grafana dashboard: names, labels, data sources, layout. */
function checkDashboard(cat: Catalog, text: string): string[] {
  const problems: string[] = [];
  const dash = JSON.parse(text) as Dashboard;
  for (const token of new Set(text.match(NAME) ?? [])) {
    if (!resolve(cat, token)) problems.push(`dashboard: names ${token}, which no registry exposes`);
  }
  const panels = dash.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
  const ids = new Set<number>();
  for (const p of panels) {
    const where = `dashboard panel "${p.title}"`;
    if (p.id === undefined || ids.has(p.id)) problems.push(`${where}: missing or repeated id ${p.id}`);
    ids.add(p.id ?? -1);
    if (p.type === 'row') continue;
    if (p.datasource?.uid !== '${DS_PROMETHEUS}') problems.push(`${where}: data source is not \${DS_PROMETHEUS}`);
    if (!p.targets?.length) problems.push(`${where}: no queries`);
    for (const t of p.targets ?? []) {
      if (t.datasource?.uid !== '${DS_PROMETHEUS}') problems.push(`${where}: a query's data source is not \${DS_PROMETHEUS}`);
      if (!t.expr || !NAME.test(t.expr)) problems.push(`${where}: a query names no switchboard metric`);
      NAME.lastIndex = 0;
      problems.push(...checkQuery(cat, t.expr ?? '', where, t.legendFormat === '__auto' ? '' : (t.legendFormat ?? '')));
    }
  }
  for (const v of dash.templating.list) {
    if (v.definition) problems.push(...checkQuery(cat, v.definition.replace(/^label_values\((.*),\s*(\w+)\)$/, '$1'), `dashboard variable ${v.name}`));
  }
  // No two panels overlap on the 24-column grid.
  const boxes = dash.panels.filter((p) => p.gridPos).map((p) => ({ title: p.title, ...p.gridPos! }));
  for (const [i, a] of boxes.entries()) {
    if (a.x < 0 || a.x + a.w > 24) problems.push(`dashboard panel "${a.title}": outside the grid`);
    for (const b of boxes.slice(i + 1)) {
      if (a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h) problems.push(`dashboard panels "${a.title}" and "${b.title}" overlap`);
    }
  }
  return problems;
}

/** A proxy metrics exporter over one stand-in pool, with one answered request recorded. */
function proxyRegistry(connections: number): Registry {
  const registry = new Registry();
  const upstream = { id: '127.0.0.1:8081', inflight: 2 } as unknown as Upstream;
  const balancer = { name: 'web', upstreams: new Map([[upstream.id, upstream]]), queueLength: 1, ejections: 3 } as unknown as PoolBalancer;
  const proxy = new ProxyMetrics(registry, () => [balancer], () => connections, undefined, 0);
  proxy.record({ pool: 'web', route: 'web', upstream, method: 'GET', target: '/', status: 200, seconds: 0.003, client: '127.0.0.1' });
  proxy.record({ pool: 'web', route: 'web', upstream: undefined, method: 'GET', target: '/', status: 503, seconds: 0, client: '127.0.0.1' });
  proxy.retried('web');
  return registry;
}

let cat: Catalog;
let metrics: ReturnType<typeof createMetrics>;

beforeAll(async () => {
  const store = new MemoryStore();
  await store.registerServer('rooms', { id: 'sfu-1', kind: 'sfu', serviceUrl: 'http://127.0.0.1:1', capacity: 500, initialHealth: 'healthy' }, Date.now());
  metrics = createMetrics(store, ['rooms', 'turn', 'origins', 'web']);
  registerMediaMetrics(metrics.registry, () => undefined);
  cat = await catalog(metrics.registry, proxyRegistry(1));
});

describe('docs/metrics.md and the Grafana dashboard against the registries', () => {
  it('the registries expose what the docs are checked against (the check has something to check)', () => {
    for (const name of ['switchboard_servers', 'switchboard_placements_total', 'switchboard_placement_duration_seconds', 'switchboard_proxy_requests_total', 'switchboard_proxy_request_duration_seconds', 'switchboard_process_cpu_seconds_total']) {
      expect(cat.has(name), name).toBe(true);
    }
    expect(cat.get('switchboard_proxy_requests_total')).toMatchObject({ type: 'counter', labels: new Set(['pool', 'backend', 'code']) });
    expect(cat.get('switchboard_servers')?.labels).toEqual(new Set(['pool', 'health', 'admin']));
    expect(cat.size).toBeGreaterThan(40);
  });

  it('documents every metric with its type and labels, and names no metric that does not exist', () => {
    expect(checkDoc(cat, read('docs/metrics.md'))).toEqual([]);
  });

  it('the dashboard queries only metrics and labels that exist, on ${DS_PROMETHEUS}, without overlapping panels', () => {
    const text = read('deploy/grafana/switchboard.json');
    expect(checkDashboard(cat, text)).toEqual([]);
    const dash = JSON.parse(text) as Dashboard;
    expect(dash.schemaVersion).toBeGreaterThanOrEqual(39);
    const vars = Object.fromEntries(dash.templating.list.map((v) => [v.name, v]));
    expect(vars.DS_PROMETHEUS).toMatchObject({ type: 'datasource', query: 'prometheus' });
    expect(vars.pool).toMatchObject({ type: 'query', definition: 'label_values(switchboard_servers, pool)' });
    // The panels the issue asks for, by the metric each one is built on.
    for (const name of [
      'switchboard_servers',
      'switchboard_server_capacity_units',
      'switchboard_server_reserved_units',
      'switchboard_server_free_units',
      'switchboard_placements{',
      'switchboard_placements_total',
      'switchboard_placement_failures_total',
      'switchboard_placement_duration_seconds_bucket',
      'switchboard_probe_duration_seconds_bucket',
      'switchboard_turn_selections_total',
      'switchboard_notifications_total',
      'switchboard_store_up',
      'switchboard_proxy_requests_total',
      'switchboard_proxy_request_duration_seconds_bucket',
      'switchboard_proxy_active_requests',
      'switchboard_proxy_queue_length',
      'switchboard_proxy_ejections',
      'switchboard_proxy_retries_total',
      'switchboard_process_cpu_seconds_total',
      'switchboard_process_resident_memory_bytes',
    ]) {
      expect(text, name).toContain(name);
    }
  });

  it('the Prometheus config and the Grafana README name only metrics that exist', () => {
    for (const file of ['deploy/prometheus/prometheus.yml', 'deploy/grafana/README.md']) {
      const names = [...new Set(read(file).match(NAME) ?? [])];
      expect(names.filter((n) => !resolve(cat, n)), file).toEqual([]);
    }
  });

  it('the checks fail on drift: an undocumented metric, a wrong type or label, an unknown name or label in a query', async () => {
    const doc = read('docs/metrics.md');
    const withNew = new Map(cat).set('switchboard_new_thing_total', { name: 'switchboard_new_thing_total', type: 'counter', labels: new Set(['pool']) });
    expect(checkDoc(withNew, doc)).toEqual(['docs/metrics.md: switchboard_new_thing_total (counter) is not documented']);
    const dropped = doc.replace(/^\| `switchboard_store_up` .*\n/m, '');
    expect(checkDoc(cat, dropped)).toContain('docs/metrics.md: switchboard_store_up (gauge) is not documented');
    expect(checkDoc(cat, doc.replace('| `switchboard_servers` | gauge | `pool`, `health`, `admin` |', '| `switchboard_servers` | counter | `pool`, `health` |'))).toEqual([
      'docs/metrics.md: switchboard_servers is a gauge, documented as counter',
      'docs/metrics.md: switchboard_servers has labels [admin, health, pool], documented as [health, pool]',
    ]);
    expect(checkDoc(cat, `${doc}\n\`switchboard_rooms_total\`\n`)).toEqual(['docs/metrics.md: names switchboard_rooms_total, which no registry exposes']);
    expect(checkDoc(cat, `${doc}\n\`\`\`promql\nsum by (region) (switchboard_servers{state="up"})\n\`\`\`\n`)).toEqual([
      expect.stringContaining('switchboard_servers has no label "state"'),
      expect.stringContaining('grouping label "region" is on none'),
    ]);

    const text = read('deploy/grafana/switchboard.json');
    expect(checkDashboard(cat, text.replace('switchboard_proxy_queue_length', 'switchboard_proxy_queue_depth'))).toEqual(
      expect.arrayContaining(['dashboard: names switchboard_proxy_queue_depth, which no registry exposes', expect.stringContaining('unknown metric switchboard_proxy_queue_depth')]),
    );
    expect(checkDashboard(cat, text.replace('sum by (pool, backend) (switchboard_proxy_active_requests', 'sum by (pool, upstream) (switchboard_proxy_active_requests'))).toEqual([expect.stringContaining('grouping label "upstream"')]);
    // A histogram's series resolve to it; a counter's do not.
    expect(resolve(cat, 'switchboard_placement_duration_seconds_bucket')?.bucket).toBe(true);
    expect(resolve(cat, 'switchboard_placements_total_count')).toBeUndefined();
  });

  it('cluster mode: the workers\' proxy metrics aggregate to the same names, summed', async () => {
    const aggregated = AggregatorRegistry.aggregate([await proxyRegistry(2).getMetricsAsJSON(), await proxyRegistry(5).getMetricsAsJSON()]);
    const names = (await aggregated.getMetricsAsJSON()).map((m) => m.name).sort();
    expect(names).toEqual((await proxyRegistry(0).getMetricsAsJSON()).map((m) => m.name).sort());
    for (const name of names) expect(cat.has(name), name).toBe(true);
    const text = await aggregated.metrics();
    expect(text).toContain('switchboard_proxy_client_connections 7');
    expect(text).toContain('switchboard_proxy_active_requests{pool="web",backend="127.0.0.1:8081"} 4');
    expect(text).toContain('switchboard_proxy_requests_total{pool="web",backend="127.0.0.1:8081",code="2xx"} 2');
    expect(text).toContain('switchboard_proxy_ejections{pool="web"} 6');
  });
});
