import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { get, proxyFixture } from '../helpers/proxy.js';

/**
 * Balancing through the real proxy: each policy's distribution, sticky cookies, maxconn and the
 * queue, rate limits and the per-backend metrics. Backends are stand-ins in this process.
 */

const fixture = proxyFixture();
const { backendsNamed, proxyFor } = fixture;
afterEach(() => fixture.cleanup());

/** Which backend answered a GET through the proxy. */
async function backendOf(url: string, init: RequestInit = {}): Promise<string> {
  const r = await get(url, init);
  expect(r.status, r.text).toBe(200);
  return r.json!.backend as string;
}

function tally(ids: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const id of ids) out[id] = (out[id] ?? 0) + 1;
  return out;
}

async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('policies', () => {
  it('round-robin: exactly equal shares over 300 sequential requests', async () => {
    const bs = await backendsNamed('a', 'b', 'c');
    const pu = await proxyFor(bs, { pools: { web: { policy: 'round-robin' } } });
    const seen: string[] = [];
    for (let i = 0; i < 300; i++) seen.push(await backendOf(`${pu.url}/rr/${i}`));
    expect(tally(seen)).toEqual({ a: 100, b: 100, c: 100 });
    // A rotation, not bursts: no backend twice in a row.
    for (let i = 1; i < seen.length; i++) expect(seen[i]).not.toBe(seen[i - 1]);
    expect(bs.map((b) => b.hits)).toEqual([100, 100, 100]);
  });

  it('weighted-round-robin: weights 300/100 give exactly 3:1 over 400 sequential requests, spread out', async () => {
    const bs = await backendsNamed('heavy', 'light');
    const pu = await proxyFor(bs, { pools: { web: { policy: 'weighted-round-robin' } } }, { entry: (b) => ({ weight: b.id === 'heavy' ? 300 : 100 }) });
    const seen: string[] = [];
    for (let i = 0; i < 400; i++) seen.push(await backendOf(`${pu.url}/wrr`));
    expect(tally(seen)).toEqual({ heavy: 300, light: 100 });
    // Smooth WRR: every window of 4 holds exactly one `light`.
    for (let i = 0; i + 4 <= seen.length; i += 4) expect(seen.slice(i, i + 4).filter((id) => id === 'light')).toHaveLength(1);
  });

  it('least-connections: new requests avoid the backend holding slow requests; concurrent ones spread evenly', async () => {
    const bs = await backendsNamed('a', 'b', 'c');
    const pu = await proxyFor(bs, { pools: { web: { policy: 'least-connections' } } });
    const web = pu.sb.proxy!.balancers.get('web')!;
    // Concurrent slow requests over three idle backends: two each (inflight counts at the pick).
    const spread = await Promise.all(Array.from({ length: 6 }, () => backendOf(`${pu.url}/slow?ms=400`)));
    expect(tally(spread)).toEqual({ a: 2, b: 2, c: 2 });

    // Only `a` in rotation while four slow requests start: all four are held by `a`.
    for (const id of ['b', 'c']) expect((await fetch(`${pu.api}/backends/web/${id}/drain`, { method: 'POST' })).status).toBe(200);
    await eventually(() => web.candidates.length === 1, 5_000, 'b and c drained');
    const held = Array.from({ length: 4 }, () => backendOf(`${pu.url}/slow?ms=1500`));
    await eventually(() => web.upstreams.get('a')!.inflight === 4, 5_000, 'four requests in flight on a');
    for (const id of ['b', 'c']) expect((await fetch(`${pu.api}/backends/web/${id}/ready`, { method: 'POST' })).status).toBe(200);
    await eventually(() => web.candidates.length === 3, 5_000, 'b and c back');
    const during: string[] = [];
    for (let i = 0; i < 30; i++) during.push(await backendOf(`${pu.url}/fast`));
    expect(web.upstreams.get('a')!.inflight).toBe(4); // still held: the check above was meaningful
    expect(tally(during)).toEqual({ b: 15, c: 15 });
    expect(await Promise.all(held)).toEqual(['a', 'a', 'a', 'a']);
  });

  it('two-random-choices: every backend gets a fair share over 300 requests', async () => {
    const bs = await backendsNamed('a', 'b', 'c');
    const pu = await proxyFor(bs, { pools: { web: { policy: 'two-random-choices' } } });
    const seen: string[] = [];
    // Some concurrency, so load differences matter too.
    for (let i = 0; i < 100; i++) seen.push(...(await Promise.all([1, 2, 3].map(() => backendOf(`${pu.url}/p2c`)))));
    const t = tally(seen);
    expect(Object.keys(t).sort()).toEqual(['a', 'b', 'c']);
    // Expected 100 each; 50 is more than 6 standard deviations away.
    for (const id of ['a', 'b', 'c']) expect(t[id]).toBeGreaterThanOrEqual(50);
  });

  it('consistent-hash on a header: a key always lands on the same backend, keys spread', async () => {
    const bs = await backendsNamed('a', 'b', 'c');
    const pu = await proxyFor(bs, { pools: { web: { policy: 'consistent-hash', hash: { header: 'x-user' } } } });
    const home = new Map<string, string>();
    for (let round = 0; round < 4; round++) {
      for (let k = 0; k < 30; k++) {
        const got = await backendOf(`${pu.url}/ch/${round}`, { headers: { 'x-user': `user-${k}` } });
        if (round === 0) home.set(`user-${k}`, got);
        else expect(got, `user-${k} round ${round}`).toBe(home.get(`user-${k}`));
      }
    }
    const t = tally([...home.values()]);
    expect(Object.keys(t).length).toBe(3); // 30 keys over 3 backends: every one gets some
    for (const n of Object.values(t)) expect(n).toBeLessThanOrEqual(20);
    // Without the key: still served (two random choices).
    expect(['a', 'b', 'c']).toContain(await backendOf(`${pu.url}/nokey`));
  });

  it('consistent-hash on a query parameter: the same as the header, keyed on ?user=', async () => {
    const bs = await backendsNamed('a', 'b', 'c');
    const pu = await proxyFor(bs, { pools: { web: { policy: 'consistent-hash', hash: { query: 'user' } } } });
    const home = new Map<string, string>();
    for (let round = 0; round < 3; round++) {
      for (let k = 0; k < 30; k++) {
        // Other parameters and the path do not change the key.
        const got = await backendOf(`${pu.url}/q/${round}?x=${round}&user=u${k}&y=1`);
        if (round === 0) home.set(`u${k}`, got);
        else expect(got, `u${k} round ${round}`).toBe(home.get(`u${k}`));
      }
    }
    expect(new Set(home.values()).size).toBe(3);
  });
});

describe('weights and per-backend limits', () => {
  it('weight 0 takes no requests; a backend entry maxconn overrides the pool one', async () => {
    const bs = await backendsNamed('a', 'b', 'z');
    const pu = await proxyFor(bs, { pools: { web: { policy: 'least-connections', maxconn: 5 } } }, { entry: (b) => (b.id === 'z' ? { weight: 0 } : b.id === 'a' ? { maxconn: 1 } : {}) });
    const web = pu.sb.proxy!.balancers.get('web')!;
    expect(web.upstreams.get('a')!.maxconn).toBe(1);
    expect(web.upstreams.get('b')!.maxconn).toBe(5);
    // Six at once: a takes one (its maxconn), b five (the pool's), z none; a seventh queues.
    const six = Array.from({ length: 6 }, () => get(`${pu.url}/slow?ms=500`));
    await eventually(() => web.upstreams.get('a')!.inflight + web.upstreams.get('b')!.inflight === 6, 5_000, 'six in flight');
    expect(web.upstreams.get('a')!.inflight).toBe(1);
    const seventh = get(`${pu.url}/slow?ms=10`);
    await eventually(() => web.queueLength === 1, 5_000, 'the seventh queued');
    expect(tally((await Promise.all(six)).map((r) => r.json!.backend as string))).toEqual({ a: 1, b: 5 });
    expect((await seventh).status).toBe(200);
    for (let i = 0; i < 10; i++) expect(await backendOf(`${pu.url}/w`)).not.toBe('z');
    expect(bs[2]!.hits).toBe(0);
  });

  it('consistent-hash on a cookie', async () => {
    const bs = await backendsNamed('a', 'b', 'c');
    const pu = await proxyFor(bs, { pools: { web: { policy: 'consistent-hash', hash: { cookie: 'session' } } } });
    const home = new Map<string, string>();
    for (let round = 0; round < 3; round++) {
      for (let k = 0; k < 20; k++) {
        const got = await backendOf(`${pu.url}/c`, { headers: { cookie: `other=${round}; session=s${k}` } });
        if (round === 0) home.set(`s${k}`, got);
        else expect(got).toBe(home.get(`s${k}`));
      }
    }
    expect(new Set(home.values()).size).toBe(3);
  });
});

describe('sticky cookie', () => {
  it('pins a client by cookie, hides the cookie from backends, redispatches when the backend goes', async () => {
    const bs = await backendsNamed('a', 'b', 'c');
    const pu = await proxyFor(bs, { pools: { web: { policy: 'round-robin', sticky: { cookie: 'SRV' } } } });
    const first = await get(`${pu.url}/s`);
    expect(first.status).toBe(200);
    const pinned = first.json!.backend as string;
    expect(first.headers.get('set-cookie')).toMatch(new RegExp(`^SRV=${pinned}; Path=/; HttpOnly$`));
    expect(first.headers.get('cache-control')).toBe('private');

    // With the cookie: always the same backend (round-robin would rotate), no new cookie.
    for (let i = 0; i < 20; i++) {
      const r = await get(`${pu.url}/s/${i}`, { headers: { cookie: `a=1; SRV=${pinned}; b=2` } });
      expect(r.json!.backend).toBe(pinned);
      expect(r.headers.get('set-cookie')).toBeNull();
      // `indirect`: the backend never sees SRV; the other cookies reach it.
      const h = r.json!.headers as Record<string, string>;
      expect(h.cookie).toBe('a=1; b=2');
    }
    // Only the balancer's cookie: no Cookie header at all reaches the backend.
    const only = await get(`${pu.url}/s`, { headers: { cookie: `SRV=${pinned}` } });
    expect((only.json!.headers as Record<string, string>).cookie).toBeUndefined();

    // An unknown backend id in the cookie: redispatched, and a new cookie.
    const bogus = await get(`${pu.url}/s`, { headers: { cookie: 'SRV=nosuch' } });
    expect(bogus.status).toBe(200);
    expect(bogus.headers.get('set-cookie')).toBe(`SRV=${bogus.json!.backend as string}; Path=/; HttpOnly`);

    // Drained through the API: the next request with the cookie goes elsewhere with a new cookie.
    expect((await fetch(`${pu.api}/backends/web/${pinned}/drain`, { method: 'POST' })).status).toBe(200);
    const moved = await get(`${pu.url}/s`, { headers: { cookie: `SRV=${pinned}` } });
    const second = moved.json!.backend as string;
    expect(second).not.toBe(pinned);
    expect(moved.headers.get('set-cookie')).toBe(`SRV=${second}; Path=/; HttpOnly`);
    expect(moved.headers.get('cache-control')).toBe('private');

    // Stopped: the same, at once (connect failure → retry elsewhere → new cookie), health check or not.
    await bs.find((b) => b.id === second)!.stop();
    const third = await get(`${pu.url}/s`, { headers: { cookie: `SRV=${second}` } });
    expect(third.status).toBe(200);
    const thirdId = third.json!.backend as string;
    expect([pinned, second]).not.toContain(thirdId);
    expect(third.headers.get('set-cookie')).toBe(`SRV=${thirdId}; Path=/; HttpOnly`);
  });

  it('sticky maxAge and secure attributes', async () => {
    const bs = await backendsNamed('a');
    const pu = await proxyFor(bs, { pools: { web: { sticky: { cookie: 'SRV', secure: true, maxAgeSeconds: 60 } } } });
    const r = await get(`${pu.url}/x`);
    expect(r.headers.get('set-cookie')).toBe('SRV=a; Path=/; Max-Age=60; HttpOnly; Secure');
    expect(r.headers.get('cache-control')).toBe('private');
  });

  it('a request queued under maxconn gets the same cookie attributes when granted', async () => {
    const bs = await backendsNamed('a');
    const pu = await proxyFor(bs, { pools: { web: { maxconn: 1, queue: { size: 5, timeoutMs: 5_000 }, sticky: { cookie: 'SRV', maxAgeSeconds: 60 } } } });
    const web = pu.sb.proxy!.balancers.get('web')!;
    const first = get(`${pu.url}/slow?ms=300`);
    await eventually(() => web.upstreams.get('a')!.inflight === 1, 5_000, 'first in flight');
    const queued = get(`${pu.url}/slow?ms=10`);
    await eventually(() => web.queueLength === 1, 5_000, 'second queued');
    expect((await first).headers.get('set-cookie')).toBe('SRV=a; Path=/; Max-Age=60; HttpOnly');
    expect((await queued).headers.get('set-cookie')).toBe('SRV=a; Path=/; Max-Age=60; HttpOnly');
  });
});

describe('maxconn and the queue', () => {
  it('2 in flight, 2 queued complete later, a 5th gets 503 queue_full', async () => {
    const bs = await backendsNamed('a');
    const pu = await proxyFor(bs, { pools: { web: { maxconn: 2, queue: { size: 2, timeoutMs: 3_000 } } } });
    const web = pu.sb.proxy!.balancers.get('web')!;
    const t0 = Date.now();
    const inFlight = [get(`${pu.url}/slow?ms=600`), get(`${pu.url}/slow?ms=600`)];
    await eventually(() => web.upstreams.get('a')!.inflight === 2, 5_000, 'two in flight');
    const queued = [get(`${pu.url}/slow?ms=10`), get(`${pu.url}/slow?ms=10`)];
    await eventually(() => web.queueLength === 2, 5_000, 'two queued');
    expect(bs[0]!.hits).toBe(2); // the queued ones have not reached the backend

    const full = await get(`${pu.url}/slow?ms=10`);
    expect(full.status).toBe(503);
    expect(full.headers.get('content-type')).toMatch(/application\/json/);
    expect(full.json!.error).toBe('queue_full');

    const results = await Promise.all([...inFlight, ...queued]);
    expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    // The queued ones waited for a slot.
    expect(Date.now() - t0).toBeGreaterThanOrEqual(550);
    expect(bs[0]!.hits).toBe(4);
    expect(web.queueLength).toBe(0);
    expect(web.upstreams.get('a')!.inflight).toBe(0);
  });

  it('a queued request past queue.timeoutMs gets 503 queue_timeout', async () => {
    const bs = await backendsNamed('a');
    const pu = await proxyFor(bs, { pools: { web: { maxconn: 2, queue: { size: 2, timeoutMs: 300 } } } });
    const web = pu.sb.proxy!.balancers.get('web')!;
    const inFlight = [get(`${pu.url}/slow?ms=2500`), get(`${pu.url}/slow?ms=2500`)];
    await eventually(() => web.upstreams.get('a')!.inflight === 2, 5_000, 'two in flight');
    const t0 = Date.now();
    const late = await get(`${pu.url}/slow?ms=10`);
    const waited = Date.now() - t0;
    expect(late.status).toBe(503);
    expect(late.json!.error).toBe('queue_timeout');
    expect(waited).toBeGreaterThanOrEqual(200); // the coarse clock may round down by a tick
    expect(waited).toBeLessThan(2_000);
    expect(web.queueLength).toBe(0);
    expect(bs[0]!.hits).toBe(2);
    expect((await Promise.all(inFlight)).map((r) => r.status)).toEqual([200, 200]);
  });

  it('a client that resets its connection while queued leaves the queue at once', async () => {
    const bs = await backendsNamed('a');
    const pu = await proxyFor(bs, { pools: { web: { maxconn: 1, queue: { size: 1, timeoutMs: 5_000 } } } });
    const web = pu.sb.proxy!.balancers.get('web')!;
    let heldDone = false;
    const held = get(`${pu.url}/slow?ms=1500`).finally(() => (heldDone = true));
    await eventually(() => web.upstreams.get('a')!.inflight === 1, 5_000, 'one in flight');
    const s = connect({ port: pu.port, host: '127.0.0.1' });
    s.on('error', () => undefined);
    s.write('GET /slow?ms=10&queued HTTP/1.1\r\nhost: x\r\n\r\n');
    await eventually(() => web.queueLength === 1, 5_000, 'one queued');
    s.resetAndDestroy();
    await eventually(() => web.queueLength === 0, 5_000, 'queue empty after the reset');
    expect(heldDone).toBe(false); // it left the queue by itself, not by being served
    // Its place is free: another request queues, and is served after the first.
    const next = get(`${pu.url}/slow?ms=10`);
    expect((await held).status).toBe(200);
    expect((await next).status).toBe(200);
    expect(bs[0]!.paths).toEqual(['/slow?ms=1500', '/slow?ms=10']);
  });
});

describe('rate limits', () => {
  it('perIp: the 6th quick request gets 429 with Retry-After and a JSON body', async () => {
    const bs = await backendsNamed('a');
    const pu = await proxyFor(bs, { rateLimit: { perIp: { rate: 5, burst: 5 }, store: 'local' } });
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await get(`${pu.url}/r`)).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200]);
    const limited = await get(`${pu.url}/r`);
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(limited.headers.get('content-type')).toMatch(/application\/json/);
    expect(limited.json!.error).toBe('rate_limited');
    expect(bs[0]!.hits).toBe(5);
    // Tokens come back at 5/s.
    await new Promise((r) => setTimeout(r, 450));
    expect((await get(`${pu.url}/r`)).status).toBe(200);
  });

  it('a route rateLimit limits only that route', async () => {
    const bs = await backendsNamed('a');
    const pu = await proxyFor(bs, { routes: [{ name: 'api', match: { pathPrefix: '/api/' }, pool: 'web', rateLimit: { rate: 1, burst: 3 } }] });
    const api: number[] = [];
    for (let i = 0; i < 4; i++) api.push((await get(`${pu.url}/api/x${i}`)).status);
    expect(api).toEqual([200, 200, 200, 429]);
    // Other paths are not limited.
    for (let i = 0; i < 20; i++) expect((await get(`${pu.url}/static/${i}`)).status).toBe(200);
    const again = await get(`${pu.url}/api/y`);
    expect(again.status).toBe(429);
    expect(Number(again.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  });
});

describe('metrics', () => {
  it('requests_total per backend and code class, and duration buckets, on the API /metrics', async () => {
    const bs = await backendsNamed('a', 'b');
    const pu = await proxyFor(bs, { pools: { web: { policy: 'round-robin' } } });
    for (let i = 0; i < 10; i++) expect((await get(`${pu.url}/m`)).status).toBe(200);
    for (let i = 0; i < 4; i++) expect((await get(`${pu.url}/status/404`)).status).toBe(404);
    const text = await (await fetch(`${pu.api}/metrics`)).text();
    const value = (series: string): number | undefined => {
      const line = text.split('\n').find((l) => l.startsWith(`${series} `));
      return line === undefined ? undefined : Number(line.slice(series.length + 1));
    };
    expect(value('switchboard_proxy_requests_total{pool="web",backend="a",code="2xx"}')).toBe(5);
    expect(value('switchboard_proxy_requests_total{pool="web",backend="b",code="2xx"}')).toBe(5);
    expect(value('switchboard_proxy_requests_total{pool="web",backend="a",code="4xx"}')).toBe(2);
    expect(value('switchboard_proxy_requests_total{pool="web",backend="b",code="4xx"}')).toBe(2);
    expect(value('switchboard_proxy_request_duration_seconds_bucket{pool="web",backend="a",le="+Inf"}')).toBe(7);
    expect(value('switchboard_proxy_request_duration_seconds_count{pool="web",backend="b"}')).toBe(7);
    expect(text).toMatch(/^switchboard_proxy_request_duration_seconds_bucket\{pool="web",backend="a",le="0.005"\} \d+$/m);
    expect(text).toMatch(/^# TYPE switchboard_proxy_request_duration_seconds histogram$/m);
    expect(text).toMatch(/^# TYPE switchboard_proxy_requests_total counter$/m);
    // Every series exactly once.
    const series = text.split('\n').filter((l) => l.startsWith('switchboard_proxy_')).map((l) => l.slice(0, l.lastIndexOf(' ')));
    expect(new Set(series).size).toBe(series.length);
  });
});
