import { describe, expect, it } from 'vitest';
import type { Server } from '../../src/core/model.js';
import { PoolBalancer } from '../../src/proxy/balancer.js';
import { HttpPoolSchema, type HttpPoolConfig } from '../../src/proxy/schema.js';
import type { Upstream } from '../../src/proxy/upstream.js';
import { Value } from 'typebox/value';

function config(over: Record<string, unknown> = {}): HttpPoolConfig {
  return Value.Default(HttpPoolSchema, structuredClone(over)) as HttpPoolConfig;
}

function server(id: string, port: number, over: Partial<Server> & { status?: 'healthy' | 'unhealthy' } = {}): Server {
  const { status, ...rest } = over;
  return { id, serviceUrl: `http://127.0.0.1:${port}`, weight: 100, attributes: {}, adminState: 'active', health: { status: status ?? 'healthy' }, ...rest } as unknown as Server;
}

describe('PoolBalancer', () => {
  it('keeps the candidates array (and so the hash ring) across store events that change nothing it uses', () => {
    const b = new PoolBalancer('web', config({ policy: 'consistent-hash' }), 0, undefined);
    b.sync([server('a', 1), server('b', 2)], 1000);
    const before = b.candidates;
    b.sync([server('a', 1, { attributes: { host: 'x' } }), server('b', 2)], 1001);
    expect(b.candidates).toBe(before);
    b.sync([server('a', 1, { weight: 50 }), server('b', 2)], 1002);
    expect(b.candidates).not.toBe(before);
    expect(b.upstreams.get('a')!.weight).toBe(50);
  });

  it('a backend back by its health check is no longer ejected', () => {
    const b = new PoolBalancer('web', config({ outlier: { consecutiveFailures: 1, baseEjectionMs: 60_000 } }), 0, undefined);
    b.sync([server('a', 1), server('b', 2), server('c', 3)], 1000);
    b.record(b.upstreams.get('c')!, false, 1000);
    expect(b.candidates.map((u) => u.id)).toEqual(['a', 'b']);
    b.sync([server('a', 1), server('b', 2), server('c', 3, { status: 'unhealthy' })], 1100);
    b.sync([server('a', 1), server('b', 2), server('c', 3)], 1200);
    expect(b.candidates.map((u) => u.id)).toEqual(['a', 'b', 'c']);
  });

  it('past its ejection a backend gets one trial request; its result decides', () => {
    const b = new PoolBalancer('web', config({ outlier: { consecutiveFailures: 1, baseEjectionMs: 1_000 } }), 0, undefined);
    b.sync([server('a', 1), server('b', 2), server('c', 3)], Date.now());
    const c = b.upstreams.get('c')!;
    const t0 = Date.now();
    b.record(c, false, t0);
    expect(b.candidates.some((u) => u.id === 'c')).toBe(false);
    b.refresh(t0 + 1_001);
    expect(b.candidates.some((u) => u.id === 'c')).toBe(true);
    const picked: Upstream[] = [];
    for (let i = 0; i < 9; i++) picked.push(b.pick(undefined, undefined)!);
    expect(picked.filter((u) => u === c)).toHaveLength(1);
    expect(b.candidates.some((u) => u.id === 'c')).toBe(false);
    b.refresh(t0 + 1_050); // trial outstanding: still out
    expect(b.candidates.some((u) => u.id === 'c')).toBe(false);
    b.record(c, true, t0 + 1_100);
    expect(b.candidates.some((u) => u.id === 'c')).toBe(true);
  });

  it('a moved backend (same id, new address) is a new upstream; the old one is handed over', () => {
    const moved: [string, string | undefined][] = [];
    const b = new PoolBalancer('web', config(), 0, undefined, Math.random, (u, next) => moved.push([`${u.port}`, next && `${next.port}`]));
    b.sync([server('a', 1)], 1000);
    b.sync([server('a', 2)], 1001);
    expect(b.upstreams.get('a')!.port).toBe(2);
    b.sync([], 1002);
    expect(moved).toEqual([
      ['1', '2'],
      ['2', undefined],
    ]);
  });
});
