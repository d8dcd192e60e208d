import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { startSwitchboard, type Switchboard } from '../../src/switchboard.js';
import { startSfu, type Sfu } from '../helpers/sfu.js';

/**
 * No input may produce a 5xx or crash the process: random bodies, params and content types at
 * every route. Refused input gets a 4xx JSON body naming the problem and changes no state.
 */
let sb: Switchboard;
let sfu: Sfu;

beforeAll(async () => {
  sfu = await startSfu();
  const config = loadConfig({ env: { APP_PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', HEALTH_CHECK_INTERVAL: '600000' } });
  sb = await startSwitchboard(config);
  const res = await sb.app.inject({ method: 'POST', url: '/register', payload: { serverId: 'sfu-1', serviceUrl: sfu.url, workers: 1, capacity: 1e9 } });
  expect(res.statusCode).toBe(200);
});
afterAll(async () => {
  await sb?.close();
  await sfu?.stop();
});

const state = () => JSON.stringify({ servers: sb.store.listServers('rooms'), rooms: sb.store.listPlacements('rooms') });

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
];

const fieldValue = fc.oneof(
  fc.jsonValue(),
  fc.string(),
  fc.integer(),
  fc.double(),
  fc.constantFrom('http://127.0.0.1:1', 'ftp://x', '', 'sfu-1', -1, 0, 2, 1e308, null, [], {}, '../../etc'),
);
const knownKeys = ['serverId', 'serviceUrl', 'workers', 'capacity', 'region', 'labels', 'wsUrl', 'healthPath', 'weight', 'load', 'roomId', 'eventNotificationUri', 'maxPeerCount', '__proto__', 'constructor'];
const body = fc.oneof(
  fc.dictionary(fc.constantFrom(...knownKeys), fieldValue),
  fc.jsonValue(),
  fc.string(),
);
const id = fc.oneof(fc.string({ maxLength: 300 }), fc.constantFrom('sfu-1', '%00', '..', '%', 'a'.repeat(200), '%E0%A4%A'));

describe('API under random input', () => {
  it('never answers 5xx (but for placement outcomes) and refuses bad input without changing state', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...routes),
        id,
        body,
        fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded', undefined),
        fc.boolean(),
        async (route, rawId, payload, contentType, raw) => {
          const before = state();
          const headers: Record<string, string> = {};
          if (contentType) headers['content-type'] = contentType;
          const res = await sb.app.inject({
            method: route.method,
            url: route.path(encodeURIComponent(rawId)),
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
            expect(state()).toBe(before);
          }
        },
      ),
      { numRuns: 1500 },
    );
    const healthz = await sb.app.inject({ method: 'GET', url: '/healthz' });
    expect(healthz.statusCode).toBe(200);
  }, 120_000);
});
