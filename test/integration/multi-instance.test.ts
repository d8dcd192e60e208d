import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, startPair, type Json, type Pair } from '../helpers/http.js';
import type { SwitchboardProcess } from '../helpers/process.js';
import type { Sfu } from '../helpers/sfu.js';

/**
 * Two `switchboard serve` processes on one Redis behave as one balancer: placement is atomic
 * across them (no server is ever over-booked) and each server is probed by one of them at a time.
 */

let pair: Pair;
let sfus: Sfu[];
let a: SwitchboardProcess;
let b: SwitchboardProcess;
const interval = 400;

beforeAll(async () => {
  // Three failures in a row take a server out: one probe slowed down by the 2,000-request burst on
  // two cores must not.
  pair = await startPair(3, { HEALTH_CHECK_INTERVAL: String(interval), HEALTH_CHECK_TIMEOUT: '300', HEALTH_FAILURE_THRESHOLD: '3' });
  ({ sfus, a, b } = pair);
}, 60_000);

afterAll(async () => {
  await pair?.stop();
});

describe('two instances on one Redis', () => {
  it('places 2,000 concurrent rooms over both without over-booking any server, then frees everything', async () => {
    // Capacities 500, 1000 and 1500 consumers; rooms of 2 peers need 4 → 125 + 250 + 375 = 750 rooms fit.
    for (const [i, s] of sfus.entries()) {
      expect((await call(i % 2 ? b.url : a.url, 'POST', '/register', { serverId: `sfu-${i}`, serviceUrl: s.url, workers: i + 1 })).status).toBe(200);
    }
    const results = await Promise.all(
      Array.from({ length: 2000 }, (_, i) => call(i % 2 ? b.url : a.url, 'POST', `/rooms/room-${i}`, { maxPeerCount: 2 })),
    );
    const ok = results.filter((r) => r.status === 200);
    const full = results.filter((r) => r.status === 503);
    expect(ok).toHaveLength(750);
    expect(full).toHaveLength(1250);
    expect(full.every((r) => r.body.error === 'no_capacity')).toBe(true);
    expect(sfus.reduce((n, s) => n + s.rooms.size, 0)).toBe(750);

    for (const instance of [a, b]) {
      const servers = (await call(instance.url, 'GET', '/servers')).body.servers as Json[];
      for (const s of servers) {
        expect(s.reserved).toBe(s.capacity);
        expect(Number(s.reserved)).toBeLessThanOrEqual(Number(s.capacity));
      }
    }
    // Every successful room is on the server whose stand-in created it.
    const placed = ok.map((r) => r.body.roomId as string);
    const where = await Promise.all(placed.map((id, i) => call(i % 2 ? a.url : b.url, 'GET', `/rooms/${id}`)));
    for (const [i, w] of where.entries()) {
      const sfu = sfus[Number(String(w.body.serverId).slice(4))]!;
      expect(sfu.rooms.has(placed[i]!)).toBe(true);
    }

    const closed = await Promise.all(where.map((w, i) => call(i % 2 ? a.url : b.url, 'POST', '/room-closed', { serverId: w.body.serverId, roomId: w.body.roomId })));
    expect(closed.every((c) => c.status === 200)).toBe(true);
    for (const instance of [a, b]) {
      const servers = (await call(instance.url, 'GET', '/servers')).body.servers as Json[];
      expect(servers.map((s) => s.reserved)).toEqual([0, 0, 0]);
    }
  }, 120_000);

  it('probes each server from one instance at a time', async () => {
    const before = sfus.map((s) => s.healthChecks);
    const windowMs = interval * 8;
    await new Promise((r) => setTimeout(r, windowMs));
    const rounds = windowMs / interval;
    for (const [i, s] of sfus.entries()) {
      const checks = s.healthChecks - before[i]!;
      // One prober: about one check per interval. Two probers would make it about twice that.
      expect(checks).toBeGreaterThanOrEqual(rounds - 2);
      expect(checks).toBeLessThanOrEqual(rounds + 2);
    }
  });

  it('sees a server go down from both instances when the prober notices it', async () => {
    await sfus[0]!.stop();
    try {
      for (const instance of [a, b]) {
        const deadline = Date.now() + interval * 4 + 1500;
        for (;;) {
          const s = (await call(instance.url, 'GET', '/servers/sfu-0')).body;
          if (s.healthy === false) break;
          if (Date.now() > deadline) throw new Error(`sfu-0 still healthy on ${instance.url}`);
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    } finally {
      await sfus[0]!.start();
    }
  });
});
