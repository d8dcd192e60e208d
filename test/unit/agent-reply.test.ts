import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crossed, decideReply, DEFAULT_THRESHOLDS, formatReply, headroomPercent, replyLine, type ReplyOptions } from '../../src/agent/reply.js';
import type { AgentState } from '../../src/agent/types.js';

const opts = (o: Partial<ReplyOptions> = {}): ReplyOptions => ({ thresholds: DEFAULT_THRESHOLDS, weight: 'headroom', ...o });
const state = (load: AgentState['load'] = {}, o: Partial<AgentState> = {}): AgentState => ({ load, failing: [], admin: 'ready', ...o });

describe('agent-check reply forms', () => {
  it('up with the headroom weight', () => {
    // cpu 63 of 90 leaves 30 %; publishers 20 of 100 leave 80 %: the smallest wins.
    expect(replyLine(state({ cpu: 63, publishers: 20 }), opts())).toBe('up 30%\n');
  });
  it('up 100% as the seed answers, and plain up', () => {
    expect(replyLine(state({ cpu: 63 }), opts({ weight: 'full' }))).toBe('up 100%\n');
    expect(replyLine(state({ cpu: 63 }), opts({ weight: 'none' }))).toBe('up\n');
  });
  it('down with the reason after #', () => {
    expect(replyLine(state({ cpu: 95 }), opts())).toBe('down #cpu 95>=90\n');
  });
  it('down when a source is failing, even with no load', () => {
    expect(replyLine(state({}, { failing: ['wcs'] }), opts())).toBe('down #wcs failing\n');
    expect(replyLine(state({ hls: 100 }, { failing: ['wcs', 'system'] }), opts())).toBe('down #wcs failing, system failing, hls 100>=100\n');
  });
  it('drain while draining and maint on request, whatever the load', () => {
    expect(replyLine(state({ cpu: 10 }, { admin: 'drain' }), opts())).toBe('drain\n');
    expect(replyLine(state({ cpu: 99 }, { admin: 'drain' }), opts())).toBe('drain\n');
    expect(replyLine(state({ cpu: 10 }, { admin: 'maint' }), opts({ maxconn: 5 }))).toBe('maint\n');
  });
  it('ready after leaving drain/maint, maxconn:N when configured', () => {
    expect(replyLine(state({ cpu: 45 }), opts({ announceReady: true }))).toBe('up ready 50%\n');
    expect(replyLine(state({ cpu: 45 }), opts({ maxconn: 300 }))).toBe('up 50% maxconn:300\n');
    expect(replyLine(state({ cpu: 95 }), opts({ maxconn: 300, announceReady: true }))).toBe('down ready maxconn:300 #cpu 95>=90\n');
  });
  it('keeps the description to one printable line', () => {
    expect(formatReply({ state: 'down', reason: 'a\nb\u00e9' })).toBe('down #a?b?\n');
  });
  it('every reply is one line HAProxy can read: known words, NN% in 1..100', () => {
    const word = /^(up|down|drain|maint|ready|\d{1,3}%|maxconn:\d+)$/;
    fc.assert(
      fc.property(
        fc.record({ cpu: fc.double({ min: 0, max: 500, noNaN: true }), publishers: fc.nat(500), 'band-out': fc.double({ min: 0, max: 1000, noNaN: true }) }, { requiredKeys: [] }),
        fc.constantFrom<AgentState['admin']>('ready', 'drain', 'maint'),
        fc.subarray(['wcs', 'srs']),
        fc.constantFrom<ReplyOptions['weight']>('headroom', 'full', 'none'),
        fc.option(fc.integer({ min: 1, max: 100_000 }), { nil: undefined }),
        (load, admin, failing, weight, maxconn) => {
          const line = replyLine(state(load, { admin, failing }), opts({ weight, ...(maxconn ? { maxconn } : {}) }));
          expect(line.endsWith('\n')).toBe(true);
          expect(line.slice(0, -1)).not.toContain('\n');
          const [head] = line.slice(0, -1).split(' #');
          for (const w of head!.split(' ')) expect(w).toMatch(word);
          const pct = /(\d+)%/.exec(head!);
          if (pct) expect(Number(pct[1])).toBeGreaterThanOrEqual(1);
          if (pct) expect(Number(pct[1])).toBeLessThanOrEqual(100);
        },
      ),
    );
  });
});

describe('threshold logic', () => {
  it.each([
    ['cpu', 90],
    ['publishers', 100],
    ['subscribers', 100],
    ['hls', 100],
    ['band-in', 100],
    ['band-out', 100],
  ])('%s reaching its default (%d) → down; just below → up', (name, limit) => {
    expect(decideReply(state({ [name]: limit }), opts()).state).toBe('down');
    expect(decideReply(state({ [name]: limit + 1 }), opts()).state).toBe('down');
    expect(decideReply(state({ [name]: limit - 0.5 }), opts())).toEqual({ state: 'up', weight: 1 });
  });
  it('custom thresholds replace the defaults by name, others stay', () => {
    const thresholds = { ...DEFAULT_THRESHOLDS, cpu: 70, publishers: 200 };
    expect(decideReply(state({ cpu: 75 }), opts({ thresholds })).state).toBe('down');
    expect(decideReply(state({ publishers: 150 }), opts({ thresholds })).weight).toBe(25);
    expect(crossed({ cpu: 75, hls: 120, subscribers: 3 }, thresholds)).toEqual(['cpu 75>=70', 'hls 120>=100']);
  });
  it('headroom: smallest across thresholds, clamped to 1..100, metrics without a threshold ignored', () => {
    expect(headroomPercent({}, DEFAULT_THRESHOLDS)).toBe(100);
    expect(headroomPercent({ cpu: 0 }, DEFAULT_THRESHOLDS)).toBe(100);
    expect(headroomPercent({ cpu: 9, 'band-in': 63 }, DEFAULT_THRESHOLDS)).toBe(37);
    expect(headroomPercent({ cpu: 89.9 }, DEFAULT_THRESHOLDS)).toBe(1);
    expect(headroomPercent({ consumers: 5000 }, DEFAULT_THRESHOLDS)).toBe(100);
    expect(headroomPercent({ consumers: 250 }, { consumers: 1000 })).toBe(75);
  });
});
