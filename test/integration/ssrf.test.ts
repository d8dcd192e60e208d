import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { Notifier } from '../../src/pools/notifier.js';
import { NetworkPolicy, type Resolver } from '../../src/security/network-policy.js';
import { startSwitchboard, type Switchboard } from '../../src/switchboard.js';

type Json = Record<string, unknown>;

const env = { APP_PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', HEALTH_CHECK_INTERVAL: '600000' };

async function post(sb: Switchboard, url: string, payload: unknown): Promise<{ status: number; body: Json }> {
  const res = await sb.app.inject({ method: 'POST', url, payload: payload as Json });
  return { status: res.statusCode, body: res.json() as Json };
}

describe('SSRF guard on registrations (default policy)', () => {
  let sb: Switchboard;
  beforeAll(async () => {
    sb = await startSwitchboard(loadConfig({ env }));
  });
  afterAll(() => sb?.close());

  it.each(['http://169.254.169.254/', 'http://169.254.169.254:80/latest/meta-data', 'http://[::ffff:169.254.169.254]/', 'http://[fe80::1]:8080/', 'http://[fd00:ec2::254]/', 'http://0.0.0.0:22/'])(
    'POST /register with serviceUrl %s → 400 naming body.serviceUrl, nothing registered',
    async (serviceUrl) => {
      const res = await post(sb, '/register', { serverId: 'evil', serviceUrl, workers: 1 });
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({ error: 'forbidden_destination', field: 'body.serviceUrl', reason: expect.any(String), message: expect.stringContaining('body.serviceUrl') });
      const servers = await sb.app.inject({ method: 'GET', url: '/servers' });
      expect((servers.json() as { servers: unknown[] }).servers).toEqual([]);
      expect((await sb.app.inject({ method: 'GET', url: '/servers/evil' })).statusCode).toBe(404);
    },
  );

  it('a loopback or private serviceUrl is accepted by default (media servers live there)', async () => {
    expect((await post(sb, '/register', { serverId: 'lo', serviceUrl: 'http://127.0.0.1:9', workers: 1 })).status).toBe(200);
    expect((await post(sb, '/register', { serverId: 'priv', serviceUrl: 'http://10.0.0.5:4443', workers: 1 })).status).toBe(200);
    // wsUrl is what clients are told, not something Switchboard calls: not checked.
    expect((await post(sb, '/register', { serverId: 'ws', serviceUrl: 'http://127.0.0.1:9', wsUrl: 'wss://169.254.1.1/', workers: 1 })).status).toBe(200);
    for (const id of ['lo', 'priv', 'ws']) await sb.app.inject({ method: 'DELETE', url: `/servers/${id}` });
  });

  it.each(['/x?y', '//evil', '//evil.example/health', '/a/../b', '/..', '/a b', '/a\\b', '/a#b', '/%2e%2e/admin'])('healthPath %j → 400 naming body.healthPath', async (healthPath) => {
    const res = await post(sb, '/register', { serverId: 'hp', serviceUrl: 'http://127.0.0.1:9', workers: 1, healthPath });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'bad_request', field: 'body.healthPath' });
    expect((await sb.app.inject({ method: 'GET', url: '/servers/hp' })).statusCode).toBe(404);
  });

  it('healthPath that is a plain path is accepted', async () => {
    expect((await post(sb, '/register', { serverId: 'hp-ok', serviceUrl: 'http://127.0.0.1:9', workers: 1, healthPath: '/rooms/health' })).status).toBe(200);
    await sb.app.inject({ method: 'DELETE', url: '/servers/hp-ok' });
  });

  it('eventNotificationUri on a link-local address → 400 naming body.eventNotificationUri, nothing placed', async () => {
    for (const uri of ['http://169.254.169.254/notify', 'http://[fe80::1]/notify']) {
      const res = await post(sb, '/rooms/room-evil', { eventNotificationUri: uri });
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({ error: 'forbidden_destination', field: 'body.eventNotificationUri' });
    }
    expect((await sb.app.inject({ method: 'GET', url: '/rooms/room-evil' })).statusCode).toBe(404);
  });

  it('POST /turn/register with a link-local host (or privateAddress) → 400, nothing registered', async () => {
    for (const [body, field] of [
      [{ host: '169.254.169.254' }, 'body.host'],
      [{ host: 'fe80::1' }, 'body.host'],
      [{ host: '::ffff:169.254.169.254' }, 'body.host'],
      [{ host: 'turn.example.com', privateAddress: '169.254.10.10' }, 'body.privateAddress'],
    ] as const) {
      const res = await post(sb, '/turn/register', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body).toMatchObject({ error: 'forbidden_destination', field });
    }
    expect((await sb.app.inject({ method: 'GET', url: '/turn/servers' })).json()).toEqual({ servers: [] });
  });
});

describe('SSRF guard with security.allowedNetworks', () => {
  let sb: Switchboard;
  beforeAll(async () => {
    const config = loadConfig({ env });
    config.security.allowedNetworks = ['10.0.0.0/8'];
    sb = await startSwitchboard(config);
  });
  afterAll(() => sb?.close());

  it('refuses a loopback serviceUrl and accepts one inside the allowed networks', async () => {
    const res = await post(sb, '/register', { serverId: 'lo', serviceUrl: 'http://127.0.0.1:4443', workers: 1 });
    expect(res).toMatchObject({ status: 400, body: { error: 'forbidden_destination', field: 'body.serviceUrl', reason: 'outside security.allowedNetworks' } });
    expect((await post(sb, '/register', { serverId: 'named-lo', serviceUrl: 'http://localhost:4443', workers: 1 })).status).toBe(400);
    expect((await post(sb, '/register', { serverId: 'in', serviceUrl: 'http://10.1.2.3:4443', workers: 1 })).status).toBe(200);
    const servers = (await sb.app.inject({ method: 'GET', url: '/servers' })).json() as { servers: { serverId: string }[] };
    expect(servers.servers.map((s) => s.serverId)).toEqual(['in']);
  });

  it('refuses webhooks and TURN registrations outside the allowed networks', async () => {
    expect((await post(sb, '/rooms/r1', { eventNotificationUri: 'http://127.0.0.1:9/notify' })).body).toMatchObject({ error: 'forbidden_destination', field: 'body.eventNotificationUri' });
    expect((await post(sb, '/turn/register', { host: '192.168.1.10' })).body).toMatchObject({ error: 'forbidden_destination', field: 'body.host' });
    expect((await post(sb, '/turn/register', { host: 'turn.example.com', privateAddress: '10.0.0.7' })).status).toBe(200);
  });
});

describe('webhooks (Notifier): undici retry interceptor behind the network policy', () => {
  let server: Server;
  let url: string;
  let statuses: number[] = [];
  let calls = 0;
  let delayMs = 0;
  beforeAll(async () => {
    server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        calls++;
        const status = statuses.shift() ?? 204;
        setTimeout(() => res.writeHead(status).end(), delayMs);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/notify`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const notifier = (policy?: NetworkPolicy, backoffMs = 20) => {
    const results: boolean[] = [];
    const n = new Notifier({ timeoutMs: 1000, attempts: 3, backoffMs, onResult: (ok) => results.push(ok), ...(policy ? { networkPolicy: policy } : {}) });
    return { n, results };
  };

  it('retries 5xx answers with backoff and delivers', async () => {
    calls = 0;
    statuses = [500, 503];
    const { n, results } = notifier();
    n.send({ url, body: { event: 'room-lost' } });
    await n.close();
    expect(calls).toBe(3);
    expect(results).toEqual([true]);
  });

  it('gives up after the attempts, and does not retry a 4xx', async () => {
    calls = 0;
    statuses = [500, 500, 500, 500];
    const { n, results } = notifier();
    n.send({ url, body: { event: 'room-lost' } });
    await n.drain();
    expect(calls).toBe(3);
    expect(results).toEqual([false]);
    calls = 0;
    statuses = [404];
    n.send({ url, body: { event: 'room-lost' } });
    await n.close();
    expect(calls).toBe(1);
    expect(results).toEqual([false, false]);
  });

  it('retries connection errors', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const { n, results } = notifier();
    const started = Date.now();
    n.send({ url: `http://127.0.0.1:${port}/`, body: {} });
    await n.close();
    expect(results).toEqual([false]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(20 + 40 - 5); // two backoffs: it did retry
  });

  it('a slow receiver never holds the caller', async () => {
    calls = 0;
    delayMs = 500;
    const { n, results } = notifier();
    const started = performance.now();
    n.send({ url, body: {} });
    expect(performance.now() - started).toBeLessThan(250); // the receiver takes 500 ms
    await n.close();
    delayMs = 0;
    expect(results).toEqual([true]);
  });

  it('refuses refused destinations at connect time, without retrying (literal and rebinding name)', async () => {
    const resolve: Resolver = (_host, _opts, cb) => setImmediate(() => cb(null, [{ address: '169.254.169.254', family: 4 }]));
    const { n, results } = notifier(new NetworkPolicy({ resolve }), 500);
    const started = Date.now();
    n.send({ url: 'http://169.254.169.254/latest/meta-data', body: {} });
    n.send({ url: 'http://rebind.test:8080/notify', body: {} });
    await n.close();
    expect(results).toEqual([false, false]);
    expect(Date.now() - started).toBeLessThan(400); // no 500 ms backoff: not retried
  });
});
