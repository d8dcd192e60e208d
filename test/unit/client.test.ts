import type { Static } from 'typebox';
import { describe, expect, it } from 'vitest';
import { heartbeatLoad, startRegistration } from '../../src/agent/registration.js';
import type { ServerView as ApiServerView } from '../../src/api/schemas.js';
import { backoffDelay, parseRetryAfter, retryableStatus, RETRYABLE_ERROR_CODES } from '../../src/client/backoff.js';
import { SwitchboardClient, SwitchboardError, UnknownServerError, isUnknownServer, type ServerView } from '../../src/client/index.js';

// The SDK's hand-written ServerView stays assignable both ways with the API's schema (checked by `npm run typecheck`).
const _fromApi = (v: Static<typeof ApiServerView>): ServerView => v;
const _toApi = (v: ServerView): Static<typeof ApiServerView> => v;
void _fromApi;
void _toApi;

describe('backoffDelay', () => {
  const opts = { minDelayMs: 100, maxDelayMs: 1000 };
  it('doubles per retry, with jitter between half and all of the step, capped at the max', () => {
    expect([0, 1, 2, 3, 4, 10].map((r) => backoffDelay(r, opts, () => 0))).toEqual([50, 100, 200, 400, 500, 500]);
    expect([0, 1, 2, 3, 4, 10].map((r) => backoffDelay(r, opts, () => 1))).toEqual([100, 200, 400, 800, 1000, 1000]);
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(2, opts);
      expect(d).toBeGreaterThanOrEqual(200);
      expect(d).toBeLessThanOrEqual(400);
    }
  });
});

describe('parseRetryAfter', () => {
  it('reads delta-seconds and HTTP dates, ignores the rest', () => {
    const now = Date.parse('2025-01-01T00:00:00Z');
    expect(parseRetryAfter('1', now)).toBe(1000);
    expect(parseRetryAfter(' 2.5 ', now)).toBe(2500);
    expect(parseRetryAfter(['3', '9'], now)).toBe(3000);
    expect(parseRetryAfter('Wed, 01 Jan 2025 00:00:04 GMT', now)).toBe(4000);
    expect(parseRetryAfter('Tue, 31 Dec 2024 00:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
    expect(parseRetryAfter('', now)).toBeUndefined();
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter('-1', now)).toBeUndefined();
  });
});

describe('retry classification', () => {
  it('retries 429 and 5xx, never other 4xx', () => {
    expect([429, 500, 502, 503, 504, 599].every(retryableStatus)).toBe(true);
    expect([400, 401, 403, 404, 409, 422].some(retryableStatus)).toBe(false);
  });
  it('retries connection errors by code', () => {
    for (const code of ['ECONNREFUSED', 'ECONNRESET', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT']) expect(RETRYABLE_ERROR_CODES.has(code)).toBe(true);
    expect(RETRYABLE_ERROR_CODES.has('ERR_INVALID_URL')).toBe(false);
  });
  it('SwitchboardError: clientError for 4xx but 429; UnknownServerError is a SwitchboardError', () => {
    const base = { kind: 'http' as const, method: 'POST', path: '/heartbeat', attempts: 1 };
    expect(new SwitchboardError('x', { ...base, status: 400, code: 'bad_request' }).clientError).toBe(true);
    expect(new SwitchboardError('x', { ...base, status: 429, code: 'too_many' }).clientError).toBe(false);
    expect(new SwitchboardError('x', { ...base, status: 503, code: 'store_unavailable' }).clientError).toBe(false);
    expect(new SwitchboardError('x', { ...base, kind: 'network', code: 'ECONNREFUSED' }).clientError).toBe(false);
    const unknown = new UnknownServerError('x', { ...base, status: 404, code: 'unknown_server', field: 'serverId' });
    expect(unknown).toBeInstanceOf(SwitchboardError);
    expect(isUnknownServer(unknown)).toBe(true);
    expect(unknown.name).toBe('UnknownServerError');
  });
});

describe('SwitchboardClient construction', () => {
  it('refuses a non-http URL or an empty serverId', () => {
    expect(() => new SwitchboardClient({ url: 'ftp://x', serverId: 'a' })).toThrow(/http/);
    expect(() => new SwitchboardClient({ url: 'http://127.0.0.1:1', serverId: '' })).toThrow(/serverId/);
  });
  it('rooms-only calls throw on a TURN client', async () => {
    const turn = new SwitchboardClient({ url: 'http://127.0.0.1:1', serverId: 't', pool: 'turn' });
    expect(turn.isRooms()).toBe(false);
    // @ts-expect-error drain() is typed for rooms clients only
    expect(() => turn.drain()).toThrow(/rooms pool/);
    await turn.close();
  });
});

describe('heartbeatLoad', () => {
  it('sends the unit first, from loadKey, and every other usable metric', () => {
    expect(heartbeatLoad({ consumers: 10, cpu: 40 }, 'rooms')).toEqual({ consumers: 10, cpu: 40 });
    expect(heartbeatLoad({ consumers: 10, subscribers: 7, cpu: 40 }, 'rooms', 'subscribers')).toEqual({ consumers: 7, subscribers: 7, cpu: 40 });
    expect(heartbeatLoad({ allocations: 3, 'band-in': 12.5 }, 'turn')).toEqual({ allocations: 3, 'band-in': 12.5 });
    expect(heartbeatLoad({ sessions: 5 }, 'turn', 'sessions')).toEqual({ allocations: 5, sessions: 5 });
  });
  it('drops what Switchboard would refuse: negatives, NaN, Infinity, undefined, too many keys; caps huge values', () => {
    expect(heartbeatLoad({ consumers: -1, a: Number.NaN, b: Infinity, c: undefined, d: 2e12 }, 'rooms')).toEqual({ d: 1e12 });
    const many = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`m${i}`, i]));
    const load = heartbeatLoad({ ...many, consumers: 1 }, 'rooms');
    expect(Object.keys(load)).toHaveLength(64);
    expect(load.consumers).toBe(1);
  });
});

describe('startRegistration options', () => {
  const source = { state: () => ({ load: {}, failing: [], admin: 'ready' as const }) };
  it('needs serviceUrl for rooms and turn.host for TURN', () => {
    expect(() => startRegistration({ url: 'http://127.0.0.1:1', pool: 'rooms', serverId: 'a' }, source)).toThrow(/serviceUrl/);
    expect(() => startRegistration({ url: 'http://127.0.0.1:1', pool: 'turn', serverId: 'a' }, source)).toThrow(/turn\.host/);
  });
});
