import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { downSince, healthChanged, initialHealth, nextHealth, type HealthThresholds, type ProbeOutcome } from '../../src/core/health.js';
import type { HealthState } from '../../src/core/model.js';

const ok = (at: number) => ({ ok: true, at, latencyMs: 1 });
const fail = (at: number) => ({ ok: false, at, error: 'HTTP 503' });

function run(start: HealthState, outcomes: boolean[], t: HealthThresholds): HealthState {
  return outcomes.reduce((s, o, i) => nextHealth(s, o ? ok(i + 1) : fail(i + 1), t), start);
}

describe('health state machine', () => {
  it('seed-000 defaults (1/1): one failure takes a server down, one success brings it back', () => {
    const t = { successThreshold: 1, failureThreshold: 1 };
    const down = nextHealth(initialHealth('healthy', 0), fail(10), t);
    expect(down).toMatchObject({ status: 'unhealthy', since: 10, lastCheck: 10, lastError: 'HTTP 503' });
    const up = nextHealth(down, ok(20), t);
    expect(up).toMatchObject({ status: 'healthy', since: 20 });
    expect(up.lastError).toBeUndefined();
  });

  it('needs failureThreshold consecutive failures and successThreshold consecutive successes', () => {
    const t = { successThreshold: 3, failureThreshold: 2 };
    const h = initialHealth('healthy', 0);
    expect(run(h, [false], t).status).toBe('healthy');
    expect(run(h, [false, true, false], t).status).toBe('healthy');
    expect(run(h, [false, false], t).status).toBe('unhealthy');
    expect(run(h, [false, false, true, true], t).status).toBe('unhealthy');
    expect(run(h, [false, false, true, true, false, true, true], t).status).toBe('unhealthy');
    expect(run(h, [false, false, true, true, true], t).status).toBe('healthy');
  });

  it('lets the first probe decide an unknown server', () => {
    const t = { successThreshold: 3, failureThreshold: 3 };
    expect(nextHealth(initialHealth('unknown', 0), ok(1), t).status).toBe('healthy');
    expect(nextHealth(initialHealth('unknown', 0), fail(1), t).status).toBe('unhealthy');
  });

  it('reports only real changes as worth writing', () => {
    const t = { successThreshold: 2, failureThreshold: 2 };
    const steady = nextHealth(nextHealth(initialHealth('healthy', 0), ok(1), t), ok(2), t);
    expect(healthChanged(steady, nextHealth(steady, ok(3), t))).toBe(false);
    expect(healthChanged(steady, nextHealth(steady, fail(3), t))).toBe(true);
  });

  it('property: the status only flips after the threshold run of equal outcomes', () => {
    fc.assert(
      fc.property(fc.array(fc.boolean(), { maxLength: 60 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 5 }), (outcomes, rise, fall) => {
        const t = { successThreshold: rise, failureThreshold: fall };
        let s = initialHealth('healthy', 0);
        let run = 0;
        let last: boolean | undefined;
        outcomes.forEach((o, i) => {
          run = o === last ? run + 1 : 1;
          last = o;
          const next = nextHealth(s, o ? ok(i + 1) : fail(i + 1), t);
          if (next.status !== s.status) expect(run).toBeGreaterThanOrEqual(o ? rise : fall);
          expect(next.status).toBe(o ? (s.status === 'healthy' || run >= rise ? 'healthy' : 'unhealthy') : s.status === 'unhealthy' || run >= fall ? 'unhealthy' : 'healthy');
          s = next;
        });
      }),
    );
  });
});

describe('downSince: when a server counts as down for releasing its placements', () => {
  const t = { successThreshold: 1, failureThreshold: 2 };
  const fail = (at: number, byAgent = false): ProbeOutcome => ({ ok: false, at, error: 'x', ...(byAgent ? { byAgent } : {}) });

  it('is when the server turned unhealthy after its probe kept failing', () => {
    let h = initialHealth('healthy', 0);
    h = nextHealth(h, fail(10), t);
    expect(downSince(h)).toBeUndefined(); // still healthy after one failure
    h = nextHealth(h, fail(20), t);
    expect(h.status).toBe('unhealthy');
    expect(h.probeFailingSince).toBe(10);
    expect(downSince(h)).toBe(20);
    h = nextHealth(h, { ok: true, at: 30 }, t);
    expect(downSince(h)).toBeUndefined();
    expect(h.probeFailingSince).toBeUndefined();
  });

  it('an agent saying down makes the server unhealthy but not down; a later probe failure counts from itself', () => {
    let h = initialHealth('healthy', 0);
    h = nextHealth(h, fail(10, true), t);
    h = nextHealth(h, fail(20, true), t);
    expect(h.status).toBe('unhealthy');
    expect(downSince(h)).toBeUndefined();
    h = nextHealth(h, fail(1_000_000, true), t);
    expect(downSince(h)).toBeUndefined();
    // Long after, the probe itself fails once: down since then, not since the agent's word.
    const before = h;
    h = nextHealth(h, fail(2_000_000), t);
    expect(downSince(h)).toBe(2_000_000);
    // The counters are capped and unchanged, but this must still be written back.
    expect(healthChanged(before, h)).toBe(true);
  });
});
