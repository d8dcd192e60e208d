import { describe, expect, it } from 'vitest';
import type { Placement, Server } from '../../src/core/model.js';
import { newServer } from '../../src/core/server.js';
import { ActivityLog } from '../../src/dashboard/activity.js';
import { quantile, summarize, totals, totalsOf } from '../../src/dashboard/history.js';
import { parsePrometheusText } from '../../src/metrics/text-format.js';

const server = (id: string, extra: Partial<Server> = {}): Server => ({
  ...newServer({ id, kind: 'sfu', serviceUrl: `http://${id}`, capacity: 100, region: 'eu', initialHealth: 'healthy' }, 0, `e-${id}`),
  ...extra,
});
const placement = (id: string, serverId: string, state: Placement['state'] = 'ready'): Placement => ({ id, serverId, serverEpoch: `e-${serverId}`, units: 1, state, createdAt: 0, data: {} }) as Placement;

describe('ActivityLog', () => {
  it('tells registrations, health flips with the reason, drains and removals; heartbeats say nothing', () => {
    const log = new ActivityLog(100, () => Date.UTC(2026, 0, 1));
    const a = server('a');
    expect(log.observe({ type: 'server', pool: 'rooms', server: a })).toMatchObject([{ kind: 'registered', level: 'info', serverId: 'a', message: 'a registered in rooms in eu, capacity 100' }]);
    expect(log.observe({ type: 'server', pool: 'rooms', server: { ...a, lastHeartbeat: 5, reported: { cpu: 0.5 } } })).toEqual([]);
    const sick = { ...a, health: { ...a.health, status: 'unhealthy' as const, lastError: 'connect ECONNREFUSED' } };
    expect(log.observe({ type: 'server', pool: 'rooms', server: sick })).toMatchObject([{ kind: 'health', level: 'error', message: 'a healthy → unhealthy: connect ECONNREFUSED' }]);
    expect(log.observe({ type: 'server', pool: 'rooms', server: { ...sick, adminState: 'drain' } })).toMatchObject([{ kind: 'admin', level: 'warn', message: 'a draining' }]);
    expect(log.observe({ type: 'server', pool: 'rooms', server: { ...sick, adminState: 'drain', epoch: 'e2' } })).toMatchObject([{ kind: 'registered', message: 'a re-registered in rooms in eu, capacity 100' }]);
    expect(log.observe({ type: 'server-removed', pool: 'rooms', id: 'a' })).toMatchObject([{ kind: 'removed', level: 'warn' }]);
    expect(log.observe({ type: 'server-removed', pool: 'rooms', id: 'a' })).toEqual([]);
    expect(log.entries().map((e) => e.kind)).toEqual(['registered', 'health', 'admin', 'registered', 'removed']);
    expect(log.entries(2).map((e) => e.kind)).toEqual(['registered', 'removed']);
    expect(log.entries()[0]!.at).toBe('2026-01-01T00:00:00.000Z');
  });

  it('tells a room placed, released, lost with its server and placed again elsewhere', () => {
    const log = new ActivityLog();
    const servers = new Map([['a', server('a')], ['b', server('b')]]);
    const lookup = (_pool: string, id: string) => servers.get(id);
    log.baseline('rooms', [...servers.values()], []);
    expect(log.observe({ type: 'placement', pool: 'rooms', placement: placement('r1', 'a', 'pending') }, lookup)).toEqual([]);
    expect(log.observe({ type: 'placement', pool: 'rooms', placement: placement('r1', 'a') }, lookup)).toMatchObject([{ kind: 'placed', message: 'room r1 placed on a' }]);
    expect(log.observe({ type: 'placement', pool: 'rooms', placement: placement('r1', 'a') }, lookup)).toEqual([]);
    expect(log.observe({ type: 'placement', pool: 'rooms', placement: placement('r2', 'a') }, lookup)).toHaveLength(1);
    expect(log.observe({ type: 'placement-removed', pool: 'rooms', placement: placement('r2', 'a') }, lookup)).toMatchObject([{ kind: 'released', level: 'info', message: 'room r2 released from a' }]);
    servers.delete('a');
    expect(log.observe({ type: 'placement-removed', pool: 'rooms', placement: placement('r1', 'a') }, lookup)).toMatchObject([{ kind: 'released', level: 'warn', message: 'room r1 lost with a' }]);
    expect(log.observe({ type: 'placement', pool: 'rooms', placement: placement('r1', 'b') }, lookup)).toMatchObject([{ message: 'room r1 placed on b again (was on a)' }]);
    expect(log.observe({ type: 'placement', pool: 'origins', placement: placement('live/s', 'b') }, lookup)).toMatchObject([{ message: 'stream live/s placed on b' }]);
  });

  it('a server removed right after releases turns its last moments of releases into losses, and only those', () => {
    let now = Date.UTC(2026, 0, 1);
    const log = new ActivityLog(5_000, () => now);
    const servers = new Map([['a', server('a')]]);
    const lookup = (_pool: string, id: string) => servers.get(id);
    log.baseline('rooms', [...servers.values()], []);
    const ids = Array.from({ length: 1_200 }, (_, i) => `r${i}`);
    for (const id of ids) log.observe({ type: 'placement', pool: 'rooms', placement: placement(id, 'a') }, lookup);
    // 1,000 closed well before the server goes, 200 in its last second (at most 1,000 are kept per server).
    const released = ids.map((id, i) => {
      if (i === 1_000) now += 5_000;
      return log.observe({ type: 'placement-removed', pool: 'rooms', placement: placement(id, 'a') }, lookup)[0]!;
    });
    expect(released.every((e) => e.kind === 'released' && e.level === 'info')).toBe(true);
    now += 1_000;
    servers.delete('a');
    expect(log.observe({ type: 'server-removed', pool: 'rooms', id: 'a' })).toMatchObject([{ kind: 'removed' }]);
    expect(released.slice(0, 1_000).filter((e) => e.level === 'warn')).toHaveLength(0);
    expect(released.slice(1_000).every((e) => e.level === 'warn' && e.message === `room ${e.placementId} lost with a`)).toBe(true);
  });

  it("tells why a placement went where it did, when it says (the store's explanation)", () => {
    const log = new ActivityLog();
    const why = { policy: 'most-free-capacity', servers: 3, eligible: 1, skipped: { draining: 1, full: 1 }, ranked: [{ id: 'a', free: 90, capacity: 100 }] };
    expect(log.observe({ type: 'placement', pool: 'rooms', placement: { ...placement('r1', 'a'), why } })).toMatchObject([
      { kind: 'placed', message: 'room r1 placed on a — most-free-capacity: ranked 1st of 1 eligible (of 3; 1 draining, 1 full skipped), 90 of 100 units free' },
    ]);
    // Placed again elsewhere, on a server the ranking had not seen first (live numbers).
    log.observe({ type: 'placement-removed', pool: 'rooms', placement: placement('r1', 'a') });
    expect(log.observe({ type: 'placement', pool: 'origins', placement: { ...placement('live/s', 'o2'), why: { policy: 'random', servers: 2, eligible: 2, ranked: [{ id: 'o1', free: 1e12, capacity: 1e12 }] } } })).toMatchObject([
      { message: 'stream live/s placed on o2 — random: the ranked candidates had filled up; taken on live numbers (2 eligible of 2)' },
    ]);
    expect(log.observe({ type: 'placement', pool: 'rooms', placement: { ...placement('r1', 'b'), why: { ...why, ranked: [{ id: 'b', free: 50, capacity: 60 }] } } })[0]!.message).toBe(
      'room r1 placed on b again (was on a) — most-free-capacity: ranked 1st of 1 eligible (of 3; 1 draining, 1 full skipped), 50 of 60 units free',
    );
  });

  it('a baseline (start, resync) is known without being told; the ring keeps its capacity', () => {
    const log = new ActivityLog(3);
    log.baseline('rooms', [server('a')], [placement('r', 'a')]);
    expect(log.observe({ type: 'server', pool: 'rooms', server: server('a') })).toEqual([]);
    expect(log.observe({ type: 'placement', pool: 'rooms', placement: placement('r', 'a') })).toEqual([]);
    for (let i = 0; i < 300; i++) log.observe({ type: 'server', pool: 'turn', server: server(`t${i}`) });
    expect(log.entries().map((e) => e.serverId)).toEqual(['t297', 't298', 't299']);
  });
});

describe('dashboard history', () => {
  const text = (created: number, failed: number, probes: [string, number][], proxy?: { n: number; buckets: [string, number][] }) =>
    [
      `switchboard_placements_total{pool="rooms",outcome="created"} ${created}`,
      `switchboard_placements_total{pool="rooms",outcome="existing"} 1000`,
      `switchboard_placement_failures_total{pool="rooms",reason="no_capacity"} ${failed}`,
      ...probes.map(([le, v]) => `switchboard_probe_duration_seconds_bucket{pool="rooms",result="ok",le="${le}"} ${v}`),
      ...(proxy
        ? [
            `switchboard_proxy_requests_total{pool="web",backend="a",code="2xx"} ${proxy.n}`,
            `switchboard_proxy_requests_total{pool="web",backend="a",code="5xx"} 0`,
            ...proxy.buckets.map(([le, v]) => `switchboard_proxy_request_duration_seconds_bucket{pool="web",backend="a",le="${le}"} ${v}`),
          ]
        : []),
    ].join('\n');

  it('rates and quantiles over the interval, as histogram_quantile interpolates', () => {
    const before = totals(parsePrometheusText(text(10, 2, [['0.001', 10], ['0.01', 10], ['+Inf', 10]], { n: 100, buckets: [['0.001', 100], ['0.01', 100], ['+Inf', 100]] })));
    const now = totals(parsePrometheusText(text(60, 7, [['0.001', 10], ['0.01', 110], ['+Inf', 110]], { n: 600, buckets: [['0.001', 100], ['0.01', 590], ['+Inf', 600]] })));
    const s = summarize(Date.UTC(2026, 0, 1), 5, now, before);
    expect(s.placementsPerSecond).toEqual({ rooms: 10 });
    expect(s.failuresPerSecond).toEqual({ no_capacity: 1 });
    // 100 probes in (1 ms, 10 ms]: the median interpolates to 5.5 ms.
    expect(s.probeLatencyMs.p50).toBeCloseTo(5.5, 3);
    expect(s.proxy!.requestsPerSecond).toBe(100);
    // 500 requests: 490 in (1, 10] ms, 10 above 10 ms → p99 is past the last finite bound: 10 ms.
    expect(s.proxy!.p99Ms).toBe(10);
  });

  it('no observation: null latencies; no proxy series: proxy null; a restarted counter counts from 0', () => {
    const a = totals(parsePrometheusText(text(50, 0, [['0.01', 3], ['+Inf', 3]])));
    const b = totals(parsePrometheusText(text(5, 0, [['0.01', 3], ['+Inf', 3]])));
    const s = summarize(0, 1, b, a);
    expect(s.placementsPerSecond).toEqual({ rooms: 5 });
    expect(s.probeLatencyMs).toEqual({ p50: null, p99: null });
    expect(s.proxy).toBeNull();
  });

  it('a proxy declared but not yet asked anything: present, at 0 requests/s and no p99', () => {
    const declared = '# HELP switchboard_proxy_requests_total x\n# TYPE switchboard_proxy_requests_total counter\n';
    const s = summarize(0, 1, totalsOf(declared), totalsOf(declared));
    expect(s.proxy).toEqual({ requestsPerSecond: 0, p99Ms: null });
    expect(summarize(0, 1, totalsOf(''), undefined).proxy).toBeNull();
  });

  it('quantile: first bucket interpolates from 0', () => {
    const now = new Map([[0.1, 10], [Infinity, 10]]);
    expect(quantile(0.5, now, undefined)).toBeCloseTo(0.05);
    expect(quantile(0.5, new Map(), undefined)).toBeNull();
  });
});
