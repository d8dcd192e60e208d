import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import { startPrometheus, type Prometheus } from '../helpers/prometheus.js';
import { startBackend, startProxy, type Backend, type ProxyUnderTest } from '../helpers/proxy.js';
import { startSfu, type Sfu } from '../helpers/sfu.js';

/**
 * A real Prometheus, configured from the shipped deploy/prometheus/prometheus.yml (its target
 * rewritten, its interval 1 s), scrapes the /metrics of a Switchboard this test started: three
 * SFUs registered through the API (one drained, one whose stand-in stopped), two rooms placed,
 * and requests through the HTTP proxy. PromQL over the scraped data returns the expected counts,
 * and every query of the Grafana dashboard and docs/metrics.md runs against it.
 */
const root = new URL('../../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), 'utf8');
type Json = Record<string, unknown>;

let sfus: Sfu[] = [];
let backend: Backend;
let pu: ProxyUnderTest;
let prometheus: Prometheus;
let tmp: string;
const PROXIED = 5;

async function call(method: string, path: string, body?: unknown): Promise<{ status: number; body: Json }> {
  const res = await request(pu.api + path, {
    method: method as 'GET',
    ...(body !== undefined ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {}),
  });
  const text = await res.body.text();
  return { status: res.statusCode, body: (text ? JSON.parse(text) : {}) as Json };
}

async function until(check: () => Promise<boolean>, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Waits until the query's value (scraped once a second) is `expected`. */
async function expectValue(expr: string, expected: number): Promise<void> {
  let last: number | undefined;
  await until(async () => (last = await prometheus.value(expr)) === expected, 15_000, () => `${expr} = ${expected} (last: ${last})`);
  expect(last, expr).toBe(expected);
}

/** The shipped scrape config, its switchboard job pointed at `target` and scraped every second. */
function scrapeConfig(target: string): string {
  const doc = parseYaml(read('deploy/prometheus/prometheus.yml')) as { global: Json; scrape_configs: Json[] };
  const job = doc.scrape_configs.find((j) => j.job_name === 'switchboard') as { static_configs: { targets: string[] }[]; scrape_interval?: string; scrape_timeout?: string };
  doc.global = { ...doc.global, scrape_interval: '1s', evaluation_interval: '1s' };
  job.scrape_interval = '1s';
  job.scrape_timeout = '1s';
  job.static_configs[0]!.targets = [target];
  return stringifyYaml(doc);
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'sb-scrape-'));
  backend = await startBackend('app');
  pu = await startProxy(
    { backends: [{ host: '127.0.0.1', port: backend.port, id: 'app' }] },
    // Two failed probes in a row take an SFU out: one slow probe on a busy machine does not.
    { env: { HEALTH_CHECK_INTERVAL: '250', HEALTH_CHECK_TIMEOUT: '200', HEALTH_FAILURE_THRESHOLD: '2', ROOM_LOST_AFTER: '600000' } },
  );
  sfus = await Promise.all([startSfu(), startSfu(), startSfu()]);
  for (const [i, id] of ['sfu-a', 'sfu-b', 'sfu-c'].entries()) {
    expect((await call('POST', '/register', { serverId: id, serviceUrl: sfus[i]!.url, workers: 1 })).status).toBe(200);
  }
  for (const room of ['room-1', 'room-2']) expect((await call('POST', `/rooms/${room}`, {})).status).toBe(200);
  expect((await call('POST', '/servers/sfu-b/drain')).body).toMatchObject({ adminState: 'drain' });
  await sfus[2]!.stop();
  await until(async () => (await call('GET', '/servers/sfu-c')).body.healthy === false, 10_000, () => 'sfu-c unhealthy');
  for (let i = 0; i < PROXIED; i++) {
    const res = await fetch(`${pu.url}/hello/${i}`);
    expect(res.status).toBe(200);
    await res.text();
  }
  prometheus = await startPrometheus(scrapeConfig(new URL(pu.api).host));
  await until(async () => (await prometheus.value('up{job="switchboard"}')) === 1, 20_000, () => `the first scrape of ${pu.api}/metrics:\n${prometheus.output()}`);
}, 90_000);

afterAll(async () => {
  await prometheus?.stop();
  await pu?.close();
  await backend?.stop();
  await Promise.all(sfus.map((s) => s.stop()));
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('Prometheus scraping Switchboard with the shipped config', () => {
  it('the shipped config is valid, and its target is the default API port, as in the Kubernetes annotations', () => {
    const check = spawnSync('promtool', ['check', 'config', new URL('deploy/prometheus/prometheus.yml', root).pathname], { encoding: 'utf8' });
    expect(check.status, check.stdout + check.stderr).toBe(0);
    const defaultPort = loadConfig({ env: {}, cwd: '/nonexistent' }).server.port;
    const doc = parseYaml(read('deploy/prometheus/prometheus.yml')) as { scrape_configs: { job_name: string; metrics_path: string; static_configs: { targets: string[] }[] }[] };
    const job = doc.scrape_configs.find((j) => j.job_name === 'switchboard')!;
    expect(job.metrics_path).toBe('/metrics');
    expect(job.static_configs[0]!.targets).toEqual([`127.0.0.1:${defaultPort}`]);
    expect(read('deploy/k8s/switchboard.yaml')).toContain(`prometheus.io/port: "${defaultPort}"`);
  });

  it('counts the servers by pool, health and admin state', async () => {
    await expectValue('sum(switchboard_servers{pool="rooms"})', 3);
    await expectValue('sum(switchboard_servers{pool="rooms",admin="drain"})', 1);
    await expectValue('sum(switchboard_servers{pool="rooms",admin="active"})', 2);
    await expectValue('sum(switchboard_servers{pool="rooms",health="healthy"})', 2);
    await expectValue('sum(switchboard_servers{pool="rooms",health="unhealthy"})', 1);
    await expectValue('sum(switchboard_servers{pool="rooms",health="healthy",admin="active"})', 1);
    await expectValue('sum(switchboard_server_healthy{pool="rooms"})', 2);
    await expectValue('switchboard_server_healthy{pool="rooms",server="sfu-c"}', 0);
    await expectValue('sum(switchboard_servers{pool="web",health="healthy"})', 1);
    const pools = (await (await fetch(`${prometheus.url}/api/v1/label/pool/values?match[]=switchboard_servers`)).json()) as { data: string[] };
    expect(pools.data.sort()).toEqual(['rooms', 'web']);
  });

  it('reports capacity, reserved units and placements as the API does', async () => {
    const servers = ((await call('GET', '/servers')).body.servers as Json[]).filter((s) => String(s.serverId).startsWith('sfu-'));
    const sum = (key: string) => servers.reduce((n, s) => n + Number(s[key]), 0);
    expect(sum('placements')).toBe(2);
    await expectValue('switchboard_placements{pool="rooms"}', 2);
    await expectValue('sum(switchboard_placements_total{pool="rooms",outcome="created"})', 2);
    await expectValue('sum(switchboard_placement_duration_seconds_count{pool="rooms",outcome="ok"})', 2);
    await expectValue('sum(switchboard_server_capacity_units{pool="rooms"})', sum('capacity'));
    await expectValue('sum(switchboard_server_reserved_units{pool="rooms"})', sum('reserved'));
    await expectValue('sum(switchboard_server_free_units{pool="rooms"})', sum('free'));
    expect(sum('reserved')).toBeGreaterThan(0);
    await expectValue('switchboard_store_up{store="memory"}', 1);
  });

  it("counts the proxy's requests per backend and status class", async () => {
    await expectValue('sum(switchboard_proxy_requests_total{pool="web",backend="app",code="2xx"})', PROXIED);
    await expectValue('sum(switchboard_proxy_request_duration_seconds_count{pool="web",backend="app"})', PROXIED);
    await expectValue('sum(switchboard_proxy_active_requests{pool="web",backend="app"})', 0);
  });

  it('every metric name Prometheus scraped is documented in docs/metrics.md', async () => {
    const names = ((await (await fetch(`${prometheus.url}/api/v1/label/__name__/values`)).json()) as { data: string[] }).data.filter((n) => n.startsWith('switchboard_'));
    const doc = read('docs/metrics.md');
    const documented = new Set([...doc.matchAll(/^\| `(switchboard_[a-z0-9_]+)` \| ([a-z]+) \|/gm)].map((m) => m[1]!));
    const histograms = new Set([...doc.matchAll(/^\| `(switchboard_[a-z0-9_]+)` \| histogram \|/gm)].map((m) => m[1]!));
    const base = (n: string) => {
      const stripped = n.replace(/_(bucket|sum|count)$/, '');
      return stripped !== n && histograms.has(stripped) ? stripped : n;
    };
    expect(names.length).toBeGreaterThan(30);
    expect(names.map(base).filter((n) => !documented.has(n))).toEqual([]);
  });

  it('every query of the Grafana dashboard runs, and the panels that need no incident have data', async () => {
    const dash = JSON.parse(read('deploy/grafana/switchboard.json')) as { panels: { title: string; type: string; targets?: { expr: string }[] }[] };
    // rate() needs two samples in its window.
    await until(async () => ((await prometheus.value('count_over_time(up{job="switchboard"}[15s])')) ?? 0) >= 3, 15_000, () => 'three scrapes');
    const substitute = (expr: string) => expr.replace(/\$__rate_interval/g, '15s').replace(/\$(pool|instance|backend)\b/g, '.*');
    const empty: string[] = [];
    for (const panel of dash.panels.filter((p) => p.type !== 'row')) {
      let rows = 0;
      for (const t of panel.targets ?? []) {
        const answer = await prometheus.query(substitute(t.expr));
        expect(answer, `${panel.title}: ${t.expr}`).toMatchObject({ status: 'success' });
        rows += Array.isArray(answer.data?.result) && answer.data.resultType === 'vector' ? answer.data.result.length : 1;
      }
      if (rows === 0) empty.push(panel.title);
    }
    // Only what needs an incident (a failure, a lost room, a webhook, a TURN server, a retry) or the
    // origins' media listeners (not started here; tested in test/e2e/origins-srs.test.ts) may be empty.
    const mayBeEmpty = ['Placement failures by reason', 'Placements lost by reason', 'Webhook notifications', 'TURN servers handed out', 'Retries', 'Media sessions relaying', 'RTMP bandwidth and UDP packets'];
    expect(empty.filter((t) => !mayBeEmpty.includes(t))).toEqual([]);
  });

  it('every PromQL example of docs/metrics.md runs, and its alert rules are valid', async () => {
    const doc = read('docs/metrics.md');
    const exprs: string[] = [];
    for (const block of doc.matchAll(/```promql\n([\s\S]*?)```/g)) {
      // A new expression starts at a line that is not indented and does not close a parenthesis.
      for (const line of block[1]!.split('\n')) {
        if (!line.trim()) continue;
        if (/^[^\s)]/.test(line) || exprs.length === 0) exprs.push(line);
        else exprs[exprs.length - 1] += `\n${line}`;
      }
    }
    expect(exprs.length).toBeGreaterThan(15);
    for (const expr of exprs) expect(await prometheus.query(expr), expr).toMatchObject({ status: 'success' });
    const free = await prometheus.query('sum by (pool) (max by (pool, server) (switchboard_server_free_units))');
    expect(free.data?.result).toContainEqual(expect.objectContaining({ metric: { pool: 'rooms' } }));

    const rules = /```yaml\n([\s\S]*?)```/.exec(doc.slice(doc.indexOf('## Alerting rules')))![1]!;
    writeFileSync(join(tmp, 'rules.yml'), rules);
    const check = spawnSync('promtool', ['check', 'rules', join(tmp, 'rules.yml')], { encoding: 'utf8' });
    expect(check.status, check.stdout + check.stderr).toBe(0);
  });
});
