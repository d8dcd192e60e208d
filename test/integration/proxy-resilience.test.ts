import { afterEach, describe, expect, it } from 'vitest';
import { get, waitHealthy, proxyFixture, type ProxyUnderTest } from '../helpers/proxy.js';

/**
 * Resilience through the real proxy: a backend killed under load, a backend answering 500s
 * (passive outlier ejection, its half-open trial), active health checks, slow start, and backends
 * managed at run time through the API.
 */

const fixture = proxyFixture();
const { backendsNamed, proxyFor } = fixture;
afterEach(() => fixture.cleanup());

async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function tally(ids: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const id of ids) out[id] = (out[id] ?? 0) + 1;
  return out;
}

interface Outcome {
  at: number;
  status: number;
  backend: string | undefined;
  /** The proxy's error code when it answered itself. */
  error?: string | undefined;
}

/** `workers` loops of sequential GETs until `stop()` resolves; every outcome recorded. */
function load(url: string, workers: number): { outcomes: Outcome[]; stop: () => Promise<void> } {
  const outcomes: Outcome[] = [];
  let running = true;
  const loops = Array.from({ length: workers }, async () => {
    while (running) {
      let o: Outcome;
      try {
        const r = await get(url);
        o = { at: Date.now(), status: r.status, backend: r.json?.backend as string | undefined, error: r.json?.error as string | undefined };
      } catch {
        o = { at: Date.now(), status: 0, backend: undefined };
      }
      outcomes.push(o);
    }
  });
  return {
    outcomes,
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
}

async function metricsText(pu: ProxyUnderTest): Promise<string> {
  return (await fetch(`${pu.api}/metrics`)).text();
}

function metricValue(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('a backend killed under load', () => {
  it('few or no failures while it dies, none once it is out, traffic again after it is back', async () => {
    const bs = await backendsNamed('a', 'b', 'c');
    const [, , c] = bs;
    // Health checks every 300 ms (timeout 299 ms), down after 3 failures: everything (client,
    // proxy, backends, probes) shares one event loop here, and short probe timeouts flap under
    // this load. The connect failures eject the dead backend long before that anyway.
    const pu = await proxyFor(bs, { pools: { web: { policy: 'round-robin', outlier: { consecutiveFailures: 2, baseEjectionMs: 30_000 }, healthCheck: { intervalMs: 300, timeoutMs: 299, fall: 3 } } } });
    const web = pu.sb.proxy!.balancers.get('web')!;
    const l = load(`${pu.url}/load`, 8);
    await sleep(1_000);
    const killedAt = Date.now();
    await c!.stop();
    // Out of rotation: by the health check (100 ms, fall 1) or by ejection, whichever is first.
    await eventually(() => !web.candidates.some((u) => u.id === 'c'), 5_000, 'c out of rotation');
    const outAt = Date.now();
    const hitsWhenOut = c!.hits;
    await sleep(1_000);
    await l.stop();

    const failed = l.outcomes.filter((o) => o.status !== 200);
    // GETs that hit the dead backend are retried on another one (connect failures, or a kept-alive
    // connection cut before the answer): none should fail; a couple are tolerated for scheduling.
    expect(failed.length, JSON.stringify(failed.slice(0, 5).map((o) => ({ ...o, at: o.at - killedAt })))).toBeLessThanOrEqual(2);
    expect(failed.filter((o) => o.at > outAt)).toEqual([]);
    expect(c!.hits).toBe(hitsWhenOut);
    const after = l.outcomes.filter((o) => o.at > outAt);
    expect(after.length).toBeGreaterThan(50);
    expect(after.every((o) => o.backend === 'a' || o.backend === 'b')).toBe(true);
    expect(l.outcomes.filter((o) => o.at < killedAt && o.backend === 'c').length).toBeGreaterThan(10);
    // The connect failures ejected it (2 in a row) before or alongside the health check.
    expect(web.ejections).toBeGreaterThanOrEqual(1);

    // Back: the health check brings it in, and the ejection from its death does not keep it out.
    await c!.start();
    await waitHealthy(pu, 3, 5_000);
    const hitsBack = c!.hits;
    const l2 = load(`${pu.url}/load`, 4);
    await sleep(800);
    await l2.stop();
    expect(l2.outcomes.every((o) => o.status === 200)).toBe(true);
    const share = l2.outcomes.filter((o) => o.backend === 'c').length / l2.outcomes.length;
    expect(c!.hits).toBeGreaterThan(hitsBack);
    expect(share).toBeGreaterThan(0.2);
  });

  it('slow start: a recovered backend ramps up its share instead of getting a full one at once', async () => {
    const bs = await backendsNamed('a', 'b', 'c');
    const [, , c] = bs;
    const pu = await proxyFor(bs, { pools: { web: { policy: 'weighted-round-robin', slowStartMs: 3_000 } } });
    const web = pu.sb.proxy!.balancers.get('web')!;
    // At the first start there is no ramp (HAProxy likewise).
    expect(web.candidates.map((u) => u.weight)).toEqual([100, 100, 100]);
    await c!.stop();
    await eventually(() => web.candidates.length === 2, 5_000, 'c down');
    await c!.start();
    await eventually(() => web.candidates.length === 3, 5_000, 'c back');
    const back = Date.now();
    const early: string[] = [];
    while (Date.now() - back < 500) early.push((await get(`${pu.url}/ss`)).json!.backend as string);
    // Weight ≤ ~20 of 100 in the first half second (the tick adds up to 100 ms): a small share.
    expect(early.length).toBeGreaterThan(20);
    expect(early.filter((id) => id === 'c').length / early.length).toBeLessThan(0.15);
    const u = web.upstreams.get('c')!;
    expect(u.weight).toBeGreaterThanOrEqual(1);
    expect(u.weight).toBeLessThan(100);
    // Ramps monotonically to full.
    let last = u.weight;
    await eventually(
      () => {
        expect(u.weight).toBeGreaterThanOrEqual(last);
        last = u.weight;
        return u.weight === 100;
      },
      6_000,
      'full weight',
    );
    expect(Date.now() - back).toBeGreaterThanOrEqual(2_500);
    const later: string[] = [];
    for (let i = 0; i < 300; i++) later.push((await get(`${pu.url}/ss`)).json!.backend as string);
    for (const n of Object.values(tally(later))) expect(Math.abs(n - 100)).toBeLessThanOrEqual(10);
  });
});

describe('passive outlier ejection', () => {
  it('a backend answering 500 is ejected after consecutiveFailures; others take the traffic; /metrics shows it', async () => {
    const bs = await backendsNamed('a', 'b', 'c');
    const [, b] = bs;
    const pu = await proxyFor(bs, { pools: { web: { policy: 'round-robin', outlier: { consecutiveFailures: 3, baseEjectionMs: 30_000 } } } });
    b!.failAll = true;
    const seen: { status: number; backend: string }[] = [];
    for (let i = 0; i < 60; i++) {
      const r = await get(`${pu.url}/o/${i}`);
      seen.push({ status: r.status, backend: r.json!.backend as string });
    }
    // Round-robin: b's turns come every third request until its third 500 ejects it.
    const errors = seen.filter((s) => s.status === 500);
    expect(errors).toHaveLength(3);
    expect(errors.every((s) => s.backend === 'b')).toBe(true);
    const lastError = seen.findIndex((s, i) => s.status === 500 && !seen.slice(i + 1).some((t) => t.status === 500));
    expect(lastError).toBeLessThan(9);
    expect(seen.slice(lastError + 1).every((s) => s.status === 200 && s.backend !== 'b')).toBe(true);
    // Its health check still passes: ejected, not down.
    expect(pu.sb.http!.get('web', 'b').health.status).toBe('healthy');
    const text = await metricsText(pu);
    expect(metricValue(text, 'switchboard_proxy_ejections{pool="web"}')).toBe(1);
    expect(metricValue(text, 'switchboard_proxy_requests_total{pool="web",backend="b",code="5xx"}')).toBe(3);
  });

  it('after the ejection time one trial request goes to the backend; its success brings it back in full', async () => {
    const bs = await backendsNamed('a', 'b', 'c');
    const [, b] = bs;
    const pu = await proxyFor(bs, { pools: { web: { policy: 'round-robin', outlier: { consecutiveFailures: 2, baseEjectionMs: 800 } } } });
    const web = pu.sb.proxy!.balancers.get('web')!;
    b!.failAll = true;
    for (let i = 0; i < 9; i++) await get(`${pu.url}/t`);
    expect(web.ejections).toBe(1);
    b!.failAll = false;
    const hits = b!.hits;
    // While ejected: nothing.
    for (let i = 0; i < 10; i++) expect((await get(`${pu.url}/t`)).json!.backend).not.toBe('b');
    expect(b!.hits).toBe(hits);
    await eventually(() => web.candidates.some((u) => u.id === 'b'), 5_000, 'b half-open');
    // Half-open: of many requests at once, exactly one (the trial) reaches b.
    const burst = await Promise.all(Array.from({ length: 9 }, () => get(`${pu.url}/slow?ms=400`)));
    expect(burst.every((r) => r.status === 200)).toBe(true);
    expect(burst.filter((r) => r.json!.backend === 'b')).toHaveLength(1);
    // The trial passed: b is back in full.
    await eventually(() => web.candidates.some((u) => u.id === 'b'), 5_000, 'b back');
    const after: string[] = [];
    for (let i = 0; i < 30; i++) after.push((await get(`${pu.url}/t`)).json!.backend as string);
    expect(tally(after)).toEqual({ a: 10, b: 10, c: 10 });
  });

  it('a failed trial ejects it again, for longer', async () => {
    const bs = await backendsNamed('a', 'b', 'c');
    const [, b] = bs;
    const pu = await proxyFor(bs, { pools: { web: { policy: 'round-robin', outlier: { consecutiveFailures: 2, baseEjectionMs: 500 } } } });
    const web = pu.sb.proxy!.balancers.get('web')!;
    b!.failAll = true;
    for (let i = 0; i < 9; i++) await get(`${pu.url}/t`);
    expect(web.ejections).toBe(1);
    await eventually(() => web.candidates.some((u) => u.id === 'b'), 5_000, 'b half-open');
    const burst = await Promise.all(Array.from({ length: 9 }, () => get(`${pu.url}/t`)));
    expect(burst.filter((r) => r.status === 500)).toHaveLength(1);
    expect(web.ejections).toBe(2);
    const reEjected = Date.now();
    await eventually(() => web.candidates.some((u) => u.id === 'b'), 5_000, 'b half-open again');
    // The second ejection lasts 2 × 500 ms (less a tick of the coarse clock).
    expect(Date.now() - reEjected).toBeGreaterThanOrEqual(800);
  });
});

describe('ejection limits', () => {
  it('maxEjectionPercent: of two failing backends only one is ejected; the other keeps serving', async () => {
    const bs = await backendsNamed('a', 'b');
    const pu = await proxyFor(bs, { pools: { web: { policy: 'round-robin', outlier: { consecutiveFailures: 2, baseEjectionMs: 30_000, maxEjectionPercent: 50 } } } });
    const web = pu.sb.proxy!.balancers.get('web')!;
    for (const b of bs) b.failAll = true;
    const seen: string[] = [];
    for (let i = 0; i < 20; i++) seen.push((await get(`${pu.url}/f`)).json!.backend as string);
    expect(web.ejections).toBe(1);
    expect(web.candidates).toHaveLength(1);
    // The one left answers everything (500s): a pool is never emptied by ejection.
    const left = web.candidates[0]!.id;
    expect(seen.slice(-10).every((id) => id === left)).toBe(true);
  });

  it('panic: with fewer than panicThresholdPercent usable, traffic goes over all of them again', async () => {
    const bs = await backendsNamed('a', 'b', 'c');
    const pu = await proxyFor(bs, { pools: { web: { policy: 'round-robin', outlier: { consecutiveFailures: 2, baseEjectionMs: 30_000, maxEjectionPercent: 100, panicThresholdPercent: 50 } } } });
    const web = pu.sb.proxy!.balancers.get('web')!;
    bs[0]!.failAll = true;
    bs[1]!.failAll = true;
    for (let i = 0; i < 12 && web.ejections < 2; i++) await get(`${pu.url}/p`);
    expect(web.ejections).toBe(2);
    expect(web.panic).toBe(true);
    const seen: string[] = [];
    for (let i = 0; i < 30; i++) seen.push((await get(`${pu.url}/p`)).json!.backend as string);
    expect(tally(seen)).toEqual({ a: 10, b: 10, c: 10 });
    expect(web.ejections).toBe(2); // 500s from backends already ejected change nothing
  });

  it('a single backend is never ejected', async () => {
    const bs = await backendsNamed('a');
    const pu = await proxyFor(bs, { pools: { web: { outlier: { consecutiveFailures: 1 } } } });
    bs[0]!.failAll = true;
    for (let i = 0; i < 5; i++) expect((await get(`${pu.url}/f`)).status).toBe(500);
    expect(pu.sb.proxy!.balancers.get('web')!.ejections).toBe(0);
    bs[0]!.failAll = false;
    expect((await get(`${pu.url}/f`)).status).toBe(200);
  });
});

describe('active health checks', () => {
  it('a backend whose /health answers 503 leaves rotation within a few intervals and returns at 200', async () => {
    const bs = await backendsNamed('a', 'b', 'c');
    const [, b] = bs;
    const pu = await proxyFor(bs, { pools: { web: { policy: 'round-robin', healthCheck: { intervalMs: 100, rise: 2, fall: 2 } } } });
    const web = pu.sb.proxy!.balancers.get('web')!;
    const t0 = Date.now();
    b!.healthStatus = 503;
    await eventually(() => !web.candidates.some((u) => u.id === 'b'), 3_000, 'b out');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(100); // fall 2: not at the first failed probe
    expect(pu.sb.http!.get('web', 'b').health.status).toBe('unhealthy');
    const hits = b!.hits;
    for (let i = 0; i < 20; i++) expect((await get(`${pu.url}/h`)).status).toBe(200);
    expect(b!.hits).toBe(hits);
    b!.healthStatus = 200;
    await eventually(() => web.candidates.some((u) => u.id === 'b'), 3_000, 'b back');
    const seen: string[] = [];
    for (let i = 0; i < 30; i++) seen.push((await get(`${pu.url}/h`)).json!.backend as string);
    expect(tally(seen)).toEqual({ a: 10, b: 10, c: 10 });
  });

  it('expectStatus is honoured: 204 is healthy by default (200-399) but not with expectStatus "200"', async () => {
    const bs = await backendsNamed('a', 'b');
    bs[1]!.healthStatus = 204;
    const loose = await proxyFor(bs);
    expect(loose.sb.http!.get('web', 'b').health.status).toBe('healthy');
    await loose.close(); // close() is idempotent: the fixture's cleanup may call it again
    const pu = await proxyFor([], { pools: { web: { healthCheck: { expectStatus: '200' } } } });
    for (const b of bs) await pu.sb.http!.register({ host: '127.0.0.1', port: b.port, id: b.id });
    await eventually(() => pu.sb.http!.get('web', 'a').health.status === 'healthy', 5_000, 'a healthy');
    await sleep(500);
    expect(pu.sb.http!.get('web', 'b').health.status).toBe('unhealthy');
    for (let i = 0; i < 10; i++) expect((await get(`${pu.url}/e`)).json!.backend).toBe('a');
    bs[1]!.healthStatus = 200;
    await eventually(() => pu.sb.proxy!.balancers.get('web')!.candidates.length === 2, 5_000, 'b healthy at 200');
  });
});

describe('runtime API', () => {
  const TOKEN = 'test-token-0123456789';
  const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };

  it('register, list, drain, ready, remove a backend; auth; bad input', async () => {
    const [a, n] = await backendsNamed('a', 'n');
    const pu = await proxyFor([a!], {}, { env: { AUTH_TOKEN: TOKEN } });
    const web = pu.sb.proxy!.balancers.get('web')!;
    const body = JSON.stringify({ host: '127.0.0.1', port: n!.port, pool: 'web', id: 'n' });

    const noAuth = await fetch(`${pu.api}/backends`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(noAuth.status).toBe(401);
    expect(((await noAuth.json()) as { error: string }).error).toBeTypeOf('string');
    expect(pu.sb.http!.list().map((x) => x.server.id)).toEqual(['a']);

    const created = await fetch(`${pu.api}/backends`, { method: 'POST', headers: auth, body });
    expect(created.status).toBe(200);
    const view = (await created.json()) as { id: string; pool: string; kind: string };
    expect(view).toMatchObject({ serverId: 'n', pool: 'web', kind: 'http' });

    // Traffic after its health check.
    await eventually(() => web.candidates.some((u) => u.id === 'n'), 5_000, 'n in rotation');
    const seen: string[] = [];
    for (let i = 0; i < 20; i++) seen.push((await get(`${pu.url}/api`)).json!.backend as string);
    expect(tally(seen)).toEqual({ a: 10, n: 10 });

    const list = (await (await fetch(`${pu.api}/backends`)).json()) as { backends: { serverId: string; pool: string; kind: string }[] };
    expect(list.backends.map((x) => [x.pool, x.serverId, x.kind])).toEqual([
      ['web', 'a', 'http'],
      ['web', 'n', 'http'],
    ]);
    const filtered = (await (await fetch(`${pu.api}/backends?pool=media`)).json()) as { backends: unknown[] };
    expect(filtered.backends).toEqual([]);
    const servers = (await (await fetch(`${pu.api}/servers`)).json()) as { servers: { serverId: string; kind: string }[] };
    expect(servers.servers.filter((s) => s.kind === 'http').map((s) => s.serverId)).toEqual(['a', 'n']);

    // Drain: no new requests.
    expect((await fetch(`${pu.api}/backends/web/n/drain`, { method: 'POST' })).status).toBe(401);
    const drained = await fetch(`${pu.api}/backends/web/n/drain`, { method: 'POST', headers: { authorization: auth.authorization } });
    expect(drained.status).toBe(200);
    expect(((await drained.json()) as { adminState: string }).adminState).toBe('drain');
    const hits = n!.hits;
    for (let i = 0; i < 10; i++) expect((await get(`${pu.url}/api`)).json!.backend).toBe('a');
    expect(n!.hits).toBe(hits);
    // Ready: back.
    expect((await fetch(`${pu.api}/backends/web/n/ready`, { method: 'POST', headers: { authorization: auth.authorization } })).status).toBe(200);
    const back: string[] = [];
    for (let i = 0; i < 10; i++) back.push((await get(`${pu.url}/api`)).json!.backend as string);
    expect(tally(back)).toEqual({ a: 5, n: 5 });

    // Re-registered elsewhere (same id, another port): one set of metric series, not two.
    const n2 = (await backendsNamed('n'))[0]!;
    const moved = await fetch(`${pu.api}/backends`, { method: 'POST', headers: auth, body: JSON.stringify({ host: '127.0.0.1', port: n2.port, pool: 'web', id: 'n' }) });
    expect(moved.status).toBe(200);
    await eventually(() => web.candidates.some((u) => u.id === 'n' && u.port === n2.port), 5_000, 'n moved');
    for (let i = 0; i < 10; i++) await get(`${pu.url}/api`);
    expect(n2.hits).toBe(5);
    const text = await metricsText(pu);
    const series = text.split('\n').filter((l) => l.startsWith('switchboard_proxy_')).map((l) => l.slice(0, l.lastIndexOf(' ')));
    expect(new Set(series).size).toBe(series.length);
    expect(metricValue(text, 'switchboard_proxy_requests_total{pool="web",backend="n",code="2xx"}')).toBe(20);

    // Delete: gone.
    const del = await fetch(`${pu.api}/backends/web/n`, { method: 'DELETE', headers: { authorization: auth.authorization } });
    expect(del.status).toBe(200);
    await eventually(() => !web.upstreams.has('n'), 5_000, 'n removed');
    const hits2 = n2.hits;
    for (let i = 0; i < 10; i++) expect((await get(`${pu.url}/api`)).json!.backend).toBe('a');
    expect(n2.hits).toBe(hits2);
    const after = (await (await fetch(`${pu.api}/backends`)).json()) as { backends: { serverId: string }[] };
    expect(after.backends.map((x) => x.serverId)).toEqual(['a']);
    // Its series went with it.
    expect(await metricsText(pu)).not.toMatch(/backend="n"/);

    // Bad input: 400 naming the field.
    const bad = async (payload: unknown, field: RegExp) => {
      const r = await fetch(`${pu.api}/backends`, { method: 'POST', headers: auth, body: JSON.stringify(payload) });
      const j = (await r.json()) as { error: string; message: string; field?: string };
      expect(r.status, JSON.stringify(j)).toBe(400);
      expect(j.field ?? j.message).toMatch(field);
    };
    await bad({ host: '127.0.0.1', port: 0 }, /port/);
    await bad({ host: '127.0.0.1', port: 70000 }, /port/);
    await bad({ host: '127.0.0.1', port: 8080, pool: 'nosuch' }, /pool/);
    await bad({ host: '127.0.0.1', port: 8080, color: 'red' }, /color/);
    await bad({ port: 8080 }, /host/);
    // Unknown id or pool on the per-backend routes.
    for (const [method, path] of [
      ['POST', '/backends/web/nosuch/drain'],
      ['POST', '/backends/web/nosuch/ready'],
      ['DELETE', '/backends/web/nosuch'],
    ] as const) {
      const r = await fetch(`${pu.api}${path}`, { method, headers: { authorization: auth.authorization } });
      expect(r.status, path).toBe(404);
      expect(((await r.json()) as { error: string }).error).toBe('not_found');
    }
    const unknownPool = await fetch(`${pu.api}/backends/nosuch/a/drain`, { method: 'POST', headers: { authorization: auth.authorization } });
    expect(unknownPool.status).toBe(400);
    expect(((await (await fetch(`${pu.api}/backends?pool=nosuch`)).json()) as { field: string }).field).toMatch(/pool/);
  });

  it('re-registering with the same settings keeps a backend serving (and drained if it was); a new weight applies in place', async () => {
    const bs = await backendsNamed('a', 'b');
    // Probes every 2 s: a re-registration that reset health would leave b out for up to that long.
    const pu = await proxyFor(bs, { pools: { web: { policy: 'weighted-round-robin', healthCheck: { intervalMs: 2_000 } } } });
    const web = pu.sb.proxy!.balancers.get('web')!;
    const post = (payload: Record<string, unknown>) => fetch(`${pu.api}/backends`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ host: '127.0.0.1', port: bs[1]!.port, id: 'b', ...payload }) });
    const epoch = pu.sb.http!.get('web', 'b').epoch;
    expect((await post({})).status).toBe(200);
    expect(web.candidates.map((u) => u.id)).toEqual(['a', 'b']);
    expect(pu.sb.http!.get('web', 'b').epoch).toBe(epoch);
    const seen: string[] = [];
    for (let i = 0; i < 10; i++) seen.push((await get(`${pu.url}/r`)).json!.backend as string);
    expect(tally(seen)).toEqual({ a: 5, b: 5 });

    const heavier = await post({ weight: 300 });
    expect(heavier.status).toBe(200);
    expect(((await heavier.json()) as { weight: number }).weight).toBe(300);
    await eventually(() => web.upstreams.get('b')!.weight === 300, 2_000, 'weight 300');
    expect(web.candidates.map((u) => u.id)).toEqual(['a', 'b']);
    const weighted: string[] = [];
    for (let i = 0; i < 40; i++) weighted.push((await get(`${pu.url}/r`)).json!.backend as string);
    expect(tally(weighted)).toEqual({ a: 10, b: 30 });

    expect((await fetch(`${pu.api}/backends/web/b/drain`, { method: 'POST' })).status).toBe(200);
    expect((await post({ weight: 300 })).status).toBe(200);
    expect(pu.sb.http!.get('web', 'b').adminState).toBe('drain');
    expect(web.candidates.map((u) => u.id)).toEqual(['a']);
  });

  it('without AUTH_TOKEN writes are open', async () => {
    const [a, n] = await backendsNamed('a', 'n');
    const pu = await proxyFor([a!]);
    const r = await fetch(`${pu.api}/backends`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ host: '127.0.0.1', port: n!.port }) });
    expect(r.status).toBe(200);
    const view = (await r.json()) as { id: string; pool: string };
    expect(view).toMatchObject({ serverId: `127.0.0.1:${n!.port}`, pool: 'web' });
    await waitHealthy(pu, 2, 5_000);
    await eventually(async () => (await get(`${pu.url}/x`)).json!.backend === 'n', 5_000, 'n serves');
  });
});
