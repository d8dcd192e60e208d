import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { defaultOutlierOptions, inPanic, OutlierDetector, type OutlierOptions } from '../../src/core/outlier.js';
import { slowStartWeight } from '../../src/core/slow-start.js';

const opts: OutlierOptions = { consecutiveFailures: 3, baseEjectionMs: 1000, maxEjectionMs: 3500, maxEjectionPercent: 50, panicThresholdPercent: 50 };

function failTimes(d: OutlierDetector, id: string, n: number, now: number, total = 10): Array<'ejected' | undefined> {
  return Array.from({ length: n }, () => d.record(id, 'failure', now, total));
}

describe('outlier detection', () => {
  it('has the Envoy-like defaults', () => {
    expect(new OutlierDetector().options).toEqual(defaultOutlierOptions);
    expect(defaultOutlierOptions).toEqual({ consecutiveFailures: 5, baseEjectionMs: 30_000, maxEjectionMs: 300_000, maxEjectionPercent: 50, panicThresholdPercent: 50 });
  });

  it('ejects after N consecutive failures, not fewer, and a success resets the run', () => {
    const d = new OutlierDetector(opts);
    expect(failTimes(d, 'a', 2, 0)).toEqual([undefined, undefined]);
    expect(d.record('a', 'success', 1, 10)).toBeUndefined();
    expect(failTimes(d, 'a', 2, 2)).toEqual([undefined, undefined]);
    expect(d.isEjected('a', 2)).toBe(false);
    expect(d.record('a', 'failure', 3, 10)).toBe('ejected');
    expect(d.isEjected('a', 3)).toBe(true);
    expect(d.admits('a', 3)).toBe(false);
    expect(d.ejectedCount(3)).toBe(1);
    expect(d.snapshot(3)).toEqual([{ id: 'a', ejectedUntil: 1003, ejections: 1, consecutiveFailures: 0 }]);
  });

  it('ignores results of requests sent before the ejection', () => {
    const d = new OutlierDetector(opts);
    failTimes(d, 'a', 3, 0);
    expect(d.record('a', 'success', 500, 10)).toBeUndefined();
    expect(d.record('a', 'failure', 600, 10)).toBeUndefined();
    expect(d.isEjected('a', 999)).toBe(true);
    expect(d.snapshot(999)[0]).toMatchObject({ ejectedUntil: 1000, ejections: 1 });
  });

  it('half-open: exactly one trial, and its success brings the backend back', () => {
    const d = new OutlierDetector(opts);
    failTimes(d, 'a', 3, 0);
    expect(d.isEjected('a', 1000)).toBe(false); // trial available
    expect(d.admits('a', 1000)).toBe(true);
    expect(d.isEjected('a', 1001)).toBe(true); // trial outstanding
    expect(d.admits('a', 1001)).toBe(false);
    expect(d.admits('a', 1500)).toBe(false);
    expect(d.ejectedCount(1500)).toBe(1);
    d.record('a', 'success', 1600, 10);
    expect(d.isEjected('a', 1600)).toBe(false);
    expect(d.admits('a', 1600)).toBe(true);
    expect(d.admits('a', 1600)).toBe(true);
    expect(d.ejectedCount(1600)).toBe(0);
  });

  it('a lost trial is replaced after baseEjectionMs', () => {
    const d = new OutlierDetector(opts);
    failTimes(d, 'a', 3, 0);
    expect(d.admits('a', 1000)).toBe(true);
    expect(d.admits('a', 1999)).toBe(false);
    expect(d.admits('a', 2000)).toBe(true);
  });

  it('a failed trial ejects again for base × count, capped at max', () => {
    const d = new OutlierDetector(opts);
    failTimes(d, 'a', 3, 0);
    let until = 1000;
    const durations: number[] = [];
    for (let i = 0; i < 5; i++) {
      expect(d.admits('a', until)).toBe(true);
      expect(d.record('a', 'failure', until, 10)).toBe('ejected');
      const next = d.snapshot(until)[0]!.ejectedUntil!;
      durations.push(next - until);
      expect(d.isEjected('a', next - 1)).toBe(true);
      until = next;
    }
    expect(durations).toEqual([2000, 3000, 3500, 3500, 3500]);
    expect(d.snapshot(until)[0]!.ejections).toBe(6);
  });

  it('the ejection count decays by one per clean base period once back', () => {
    const d = new OutlierDetector(opts);
    failTimes(d, 'a', 3, 0); // 1st: until 1000
    d.record('a', 'success', 1000, 10);
    failTimes(d, 'a', 3, 1100); // 2nd: until 3100 (2 × base)
    expect(d.snapshot(1100)[0]).toMatchObject({ ejections: 2, ejectedUntil: 3100 });
    d.record('a', 'success', 3100, 10); // back at 3100
    expect(d.snapshot(4099)[0]!.ejections).toBe(2);
    expect(d.snapshot(4100)[0]!.ejections).toBe(1);
    // A failure restarts the clean period.
    d.record('a', 'failure', 4500, 10);
    expect(d.snapshot(5400)[0]!.ejections).toBe(1);
    d.record('a', 'success', 5400, 10);
    expect(d.snapshot(5499)[0]).toMatchObject({ ejections: 1, consecutiveFailures: 0 });
    // A clean period since the failure at 4500: forgotten entirely, the next ejection is short again.
    expect(d.snapshot(5500)).toEqual([]);
    failTimes(d, 'a', 3, 6000);
    expect(d.snapshot(6000)[0]).toMatchObject({ ejections: 1, ejectedUntil: 7000 });
  });

  it('never ejects more than maxEjectionPercent, but at least one of two, never the only one', () => {
    const d = new OutlierDetector(opts);
    expect(failTimes(d, 'only', 10, 0, 1)).not.toContain('ejected');
    expect(d.isEjected('only', 0)).toBe(false);

    const two = new OutlierDetector({ ...opts, maxEjectionPercent: 10 });
    expect(failTimes(two, 'a', 3, 0, 2)).toContain('ejected');
    expect(failTimes(two, 'b', 10, 0, 2)).not.toContain('ejected');

    const five = new OutlierDetector(opts); // 50% of 5 → 2
    for (const id of ['a', 'b', 'c', 'd']) failTimes(five, id, 3, 0, 5);
    expect(five.ejectedCount(0)).toBe(2);
    expect(five.isEjected('c', 0)).toBe(false);
    // Room frees up when one comes back: c, still failing, is ejected on its next failure.
    five.record('a', 'success', 1000, 5);
    expect(five.record('c', 'failure', 1000, 5)).toBe('ejected');
    expect(five.ejectedCount(1000)).toBe(2);
  });

  it('the ejected share never exceeds the limit (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10 }),
        fc.integer({ min: 0, max: 100 }),
        fc.array(fc.record({ id: fc.nat(9), ok: fc.boolean(), dt: fc.nat(700) }), { maxLength: 200 }),
        (total, pct, events) => {
          const d = new OutlierDetector({ ...opts, consecutiveFailures: 2, maxEjectionPercent: pct });
          let now = 0;
          const limit = total < 2 || pct === 0 ? 0 : Math.max(1, Math.floor((total * pct) / 100));
          for (const e of events) {
            now += e.dt;
            const id = `b${e.id % total}`;
            if (d.admits(id, now)) d.record(id, e.ok ? 'success' : 'failure', now, total);
            expect(d.ejectedCount(now)).toBeLessThanOrEqual(limit);
          }
        },
      ),
    );
  });

  it('forget drops a backend', () => {
    const d = new OutlierDetector(opts);
    failTimes(d, 'a', 3, 0);
    d.forget('a');
    expect(d.isEjected('a', 0)).toBe(false);
    expect(d.ejectedCount(0)).toBe(0);
    expect(d.snapshot(0)).toEqual([]);
  });

  it('consecutiveFailures 0 disables ejection', () => {
    const d = new OutlierDetector({ ...opts, consecutiveFailures: 0 });
    expect(failTimes(d, 'a', 20, 0)).not.toContain('ejected');
    expect(d.snapshot(0)).toEqual([]);
  });
});

describe('panic mode', () => {
  it('panics when fewer than the threshold percent are usable', () => {
    expect(inPanic(5, 10, 50)).toBe(false);
    expect(inPanic(4, 10, 50)).toBe(true);
    expect(inPanic(1, 3, 50)).toBe(true);
    expect(inPanic(2, 3, 50)).toBe(false);
    expect(inPanic(0, 1, 50)).toBe(true);
    expect(inPanic(0, 10, 0)).toBe(false);
    expect(inPanic(0, 0, 50)).toBe(false);
  });
});

describe('slow start', () => {
  it('ramps linearly from 1 to the full weight over slowStartMs', () => {
    expect(slowStartWeight(100, 1000, 1000, 10_000)).toBe(1);
    expect(slowStartWeight(100, 1000, 3500, 10_000)).toBe(25);
    expect(slowStartWeight(100, 1000, 6000, 10_000)).toBe(50);
    expect(slowStartWeight(100, 1000, 10_999, 10_000)).toBe(100);
    expect(slowStartWeight(100, 1000, 11_000, 10_000)).toBe(100);
    expect(slowStartWeight(100, 1000, 500, 10_000)).toBe(1); // clock before recovery
    expect(slowStartWeight(3, 0, 1, 10_000)).toBe(1);
  });

  it('leaves 0, no slow start and a finished ramp alone', () => {
    expect(slowStartWeight(0, 0, 5, 10_000)).toBe(0);
    expect(slowStartWeight(100, 0, 5, 0)).toBe(100);
    expect(slowStartWeight(0.5, 0, 5, 10_000)).toBe(0.5);
  });

  it('is monotone, whole, at least 1 and at most the weight while ramping', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 256 }), fc.integer({ min: 1, max: 600_000 }), fc.nat(700_000), fc.nat(700_000), (w, ms, t1, t2) => {
        const [a, b] = t1 <= t2 ? [t1, t2] : [t2, t1];
        const wa = slowStartWeight(w, 0, a, ms);
        const wb = slowStartWeight(w, 0, b, ms);
        expect(wa).toBeLessThanOrEqual(wb);
        expect(wa).toBeGreaterThanOrEqual(1);
        expect(wb).toBeLessThanOrEqual(w);
        expect(Number.isInteger(wa)).toBe(true);
      }),
    );
  });
});
