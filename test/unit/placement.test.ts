import { describe, expect, it } from 'vitest';
import type { Placement } from '../../src/core/model.js';
import { isExpired, newPlacement, readyPlacement } from '../../src/core/server.js';

describe('placement records', () => {
  const pending = newPlacement(
    { id: 's1', epoch: 'e1' },
    { placementId: 'r1', units: 4, notifyUri: 'http://app/notify', attributes: { maxPeerCount: 2 }, now: 1000, owner: 'i1', pendingTtlMs: 500 },
    'a1',
  );

  it('a new placement is pending, owned, with a deadline', () => {
    expect(pending).toEqual({
      id: 'r1',
      serverId: 's1',
      serverEpoch: 'e1',
      units: 4,
      state: 'pending',
      createdAt: 1000,
      attributes: { maxPeerCount: 2 },
      attempt: 'a1',
      owner: 'i1',
      deadline: 1500,
      notifyUri: 'http://app/notify',
    } satisfies Placement);
  });

  it('ready keeps every field but the deadline, and adds the answer', () => {
    const ready = readyPlacement(pending, { wsUrl: 'ws://x' });
    const { deadline: _deadline, ...rest } = pending;
    expect(ready).toEqual({ ...rest, state: 'ready', data: { wsUrl: 'ws://x' } });
  });

  it('expires only while pending, only past the deadline', () => {
    expect(isExpired(pending, 1500)).toBe(false);
    expect(isExpired(pending, 1501)).toBe(true);
    expect(isExpired(readyPlacement(pending, {}), 10 ** 12)).toBe(false);
    const { deadline: _d, ...noDeadline } = pending;
    expect(isExpired(noDeadline, 10 ** 12)).toBe(false);
  });
});
