import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { RedisStore } from '../../src/store/redis/index.js';
import type { StateStore } from '../../src/store/store.js';
import { startSwitchboard, type Switchboard } from '../../src/switchboard.js';
import { RedisServer } from '../helpers/redis.js';
import { startSfu, type Sfu } from '../helpers/sfu.js';

/**
 * No input may produce a 5xx or crash the process: random bodies, params and content types at
 * every route, with strings over all of Unicode and lone UTF-16 surrogates. Refused input gets a
 * 4xx JSON body naming the problem and changes no state; after every request, every server's
 * reserved units equal the sum of its live placements. On both stores.
 */
let sfu: Sfu;
let redis: RedisServer;

beforeAll(async () => {
  sfu = await startSfu();
  redis = await RedisServer.start();
});
afterAll(async () => {
  await sfu?.stop();
  await redis?.dispose();
});

const state = (sb: Switchboard) => JSON.stringify({ servers: sb.store.listServers('rooms'), rooms: sb.store.listPlacements('rooms') });

const holdings = (sb: Switchboard) =>
  JSON.stringify({ reserved: sb.store.listServers('rooms').map((s) => [s.id, s.reserved]), rooms: sb.store.listPlacements('rooms') });

/** Reserved units per server vs the sum of its placements' units, as one comparable value. */
function accounting(store: StateStore): { reserved: Record<string, number>; placed: Record<string, number> } {
  const reserved: Record<string, number> = {};
  const placed: Record<string, number> = {};
  for (const s of store.listServers('rooms')) {
    reserved[s.id] = s.reserved;
    placed[s.id] = 0;
  }
  for (const p of store.listPlacements('rooms')) placed[p.serverId] = (placed[p.serverId] ?? 0) + p.units;
  return { reserved, placed };
}

const routes: { method: 'GET' | 'POST' | 'DELETE'; path: (id: string) => string }[] = [
  { method: 'POST', path: () => '/register' },
  { method: 'POST', path: () => '/heartbeat' },
  { method: 'POST', path: () => '/rooms' },
  { method: 'POST', path: (id) => `/rooms/${id}` },
  { method: 'GET', path: (id) => `/rooms/${id}` },
  { method: 'POST', path: () => '/room-closed' },
  { method: 'GET', path: () => '/servers' },
  { method: 'GET', path: (id) => `/servers/${id}` },
  { method: 'DELETE', path: (id) => `/servers/${id}` },
  { method: 'POST', path: (id) => `/servers/${id}/drain` },
  { method: 'DELETE', path: (id) => `/servers/${id}/drain` },
  { method: 'GET', path: () => '/healthz' },
  { method: 'POST', path: () => '/turn/register' },
  { method: 'POST', path: () => '/turn/heartbeat' },
  // The dashboard's routes: any pool's servers, its buttons, the log.
  { method: 'GET', path: (id) => `/pools/${id}/servers` },
  { method: 'POST', path: (id) => `/pools/rooms/servers/${id}/drain` },
  { method: 'DELETE', path: (id) => `/pools/rooms/servers/${id}/drain` },
  { method: 'DELETE', path: (id) => `/pools/${id}/servers/${id}` },
  { method: 'GET', path: (id) => `/activity?limit=${id}` },
  { method: 'GET', path: () => '/stats/history' },
  // Which origin holds each stream: the list's filters and one stream by any key.
  { method: 'GET', path: (id) => `/origins/streams?origin=${id}&limit=${id}` },
  { method: 'GET', path: (id) => `/origins/streams/${id}` },
  { method: 'GET', path: (id) => `/origins/streams/__defaultVhost__/${id}/${id}` },
];

const lone = fc.constantFrom('\ud800', '\udfff', 'eu-\udc00', '\ud83d', 'x\ud83dy');
const unicode = fc.oneof(fc.string({ unit: 'binary' }), fc.string({ unit: 'grapheme' }), lone, fc.string({ unit: fc.oneof(fc.constantFrom('\ud800', '\udbff'), fc.string({ unit: 'binary', minLength: 1, maxLength: 1 })) }));
const fieldValue = fc.oneof(
  fc.jsonValue(),
  fc.string(),
  unicode,
  fc.dictionary(unicode, fc.oneof(unicode, fc.integer({ min: 0, max: 100 }))),
  fc.integer(),
  fc.double(),
  fc.constantFrom('http://127.0.0.1:1', 'ftp://x', '', 'sfu-1', -1, 0, 2, 1e308, null, [], {}, '../../etc'),
);
const knownKeys = ['serverId', 'serviceUrl', 'workers', 'capacity', 'region', 'labels', 'wsUrl', 'healthPath', 'weight', 'load', 'roomId', 'eventNotificationUri', 'maxPeerCount', '__proto__', 'constructor'];
// Bodies every route would accept but for one string drawn from all of Unicode (or a lone
// surrogate): what reaches the stores when validation lets it through.
const almostValid = fc.oneof(
  fc.record({ serverId: fc.constantFrom('fz-1', 'fz-2'), serviceUrl: fc.constant('http://127.0.0.1:9'), workers: fc.constant(1), region: unicode }),
  fc.record({ serverId: fc.constant('fz-1'), serviceUrl: fc.constant('http://127.0.0.1:9'), workers: fc.constant(1), labels: fc.dictionary(unicode, unicode, { maxKeys: 3 }) }),
  fc.record({ maxPeerCount: fc.constant(2), region: unicode }),
  fc.record({ serverId: fc.constant('sfu-1'), load: fc.dictionary(unicode, fc.integer({ min: 0, max: 10 }), { minKeys: 1, maxKeys: 3 }) }),
  fc.record({ host: fc.constant('127.0.0.1'), region: unicode }),
);
const body = fc.oneof(
  fc.dictionary(fc.constantFrom(...knownKeys), fieldValue),
  fc.jsonValue(),
  fc.string(),
  almostValid,
  almostValid,
);
const id = fc.oneof(fc.string({ maxLength: 300 }), unicode, fc.constantFrom('sfu-1', '%00', '..', '%', 'a'.repeat(200), '%E0%A4%A', '%ED%A0%80'));

/** encodeURIComponent, but a string holding a lone surrogate goes out as the bytes a WTF-8 encoder would send. */
function encodePath(s: string): string {
  try {
    return encodeURIComponent(s);
  } catch {
    return encodeURIComponent((s as unknown as { toWellFormed(): string }).toWellFormed()) + '%ED%A0%80';
  }
}

describe.each(['memory', 'redis'] as const)('API under random input (%s store)', (kind) => {
  let sb: Switchboard;
  beforeAll(async () => {
    const env: Record<string, string> = { APP_PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', HEALTH_CHECK_INTERVAL: '600000' };
    if (kind === 'redis') Object.assign(env, { REDIS_URL: redis.url, REDIS_PREFIX: `fuzz${Date.now()}` });
    sb = await startSwitchboard(loadConfig({ env }));
    const res = await sb.app.inject({ method: 'POST', url: '/register', payload: { serverId: 'sfu-1', serviceUrl: sfu.url, workers: 1, capacity: 1e9 } });
    expect(res.statusCode).toBe(200);
  });
  afterAll(async () => {
    await sb?.close();
  });

  it('never answers 5xx (but for placement outcomes), refuses bad input without changing state, and keeps reserved = placed', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...routes),
        id,
        body,
        fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded', undefined),
        fc.boolean(),
        async (route, rawId, payload, contentType, raw) => {
          const before = state(sb);
          const beforeHoldings = holdings(sb);
          const headers: Record<string, string> = {};
          if (contentType) headers['content-type'] = contentType;
          const res = await sb.app.inject({
            method: route.method,
            url: route.path(encodePath(rawId)),
            headers,
            ...(route.method === 'POST' ? { payload: raw ? String(JSON.stringify(payload) ?? '').slice(0, 50) : JSON.stringify(payload) } : {}),
          });
          const placing = route.method === 'POST' && route.path('x').startsWith('/rooms');
          // 502/503 are placement outcomes (no media server accepted / none has room), not crashes.
          const allowed5xx = placing ? [502, 503] : [];
          if (res.statusCode >= 500) expect(allowed5xx, res.body).toContain(res.statusCode);
          if (res.statusCode >= 400) {
            const json = res.json() as { error?: unknown; message?: unknown; field?: unknown };
            expect(typeof json.error).toBe('string');
            expect(typeof json.message).toBe('string');
            if (json.error === 'bad_request') expect(typeof json.field).toBe('string');
            // A refused request changes nothing. A placement that failed (502/503) may have tried
            // servers (their revisions moved) but leaves no placement and no units behind.
            if (res.statusCode < 500) expect(state(sb)).toBe(before);
            else expect(holdings(sb)).toBe(beforeHoldings);
          }
          const { reserved, placed } = accounting(sb.store);
          expect(reserved).toEqual(placed);
        },
      ),
      { numRuns: kind === 'redis' ? 1000 : 1500 },
    );
    const healthz = await sb.app.inject({ method: 'GET', url: '/healthz' });
    expect(healthz.statusCode).toBe(200);
    if (kind === 'redis') {
      // The truth in Redis, as a fresh instance loads it, adds up the same way.
      const fresh = new RedisStore({ connection: { mode: 'standalone', url: redis.url }, prefix: (sb.store as unknown as { prefix: string }).prefix, pools: ['rooms'] });
      await fresh.start();
      try {
        const { reserved, placed } = accounting(fresh);
        expect(reserved).toEqual(placed);
        expect(accounting(fresh)).toEqual(accounting(sb.store));
      } finally {
        await fresh.close();
      }
    }
  }, 180_000);
});
