import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { startSwitchboard, type Switchboard } from '../../src/switchboard.js';
import { allocate, Coturn } from '../helpers/coturn.js';

/** TURN pools against two real coturn servers on loopback. */
type Json = Record<string, unknown>;
const secret = 'north-secret-for-tests';
let a: Coturn;
let b: Coturn;
let sb: Switchboard;

async function get(path: string): Promise<{ status: number; body: Json }> {
  const res = await fetch(sb.url + path);
  return { status: res.status, body: (await res.json()) as Json };
}

async function until(check: () => Promise<boolean>, timeoutMs: number, what: () => string): Promise<number> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return Date.now() - started;
}

beforeAll(async () => {
  [a, b] = await Promise.all([Coturn.start('127.0.0.1', secret), Coturn.start('127.0.0.2', secret)]);
  const config = loadConfig({ env: { APP_PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', HEALTH_CHECK_INTERVAL: '600000' } });
  config.turn.servers = [
    { host: a.host, port: a.port },
    { host: b.host, port: b.port },
  ];
  config.turn.healthCheck = { intervalSeconds: 0.3, timeoutSeconds: 0.2, successThreshold: 2, failureThreshold: 2, protocol: 'tcp' };
  config.turn.secret = [secret, 'previous-secret'];
  sb = await startSwitchboard(config);
}, 30_000);

afterAll(async () => {
  await sb?.close();
  await Promise.all([a?.stop(), b?.stop()]);
});

const turnData = async () => (await get('/coturn')).body.turn_data as Record<string, Json>;

describe('TURN pool with real coturn', () => {
  it('probes both servers healthy and answers GET /coturn in the seed shape', async () => {
    await until(async () => Object.values(await turnData()).every((d) => d.healthy === true && d.success_th === 2), 3000, () => 'both healthy');
    const res = await get('/coturn');
    expect(res.status).toBe(200);
    expect(Object.keys(res.body.turn_data as Json).sort()).toEqual(['127.0.0.1', '127.0.0.2']);
    expect((res.body.turn_data as Record<string, Json>)['127.0.0.1']).toEqual({ failed_checks: 0, healthy: true, initial: 0, success_th: 2 });
    expect(['127.0.0.1', '127.0.0.2']).toContain(res.body.turn_server);
    expect(await get('/p/health_check')).toEqual({ status: 200, body: { health: 'healthy' } });
  });

  it('takes a stopped server out after failureThreshold probes and brings it back after successThreshold', async () => {
    await b.stop();
    try {
      const took = await until(async () => (await turnData())['127.0.0.2']!.healthy === false, 3000, () => 'b unhealthy');
      expect(took).toBeGreaterThanOrEqual(300); // two failed probes, 0.3 s apart
      expect((await turnData())['127.0.0.2']!.failed_checks).toBe(2);
      for (let i = 0; i < 20; i++) expect((await get('/coturn')).body.turn_server).toBe('127.0.0.1');
      for (let i = 0; i < 20; i++) expect(JSON.stringify((await get('/turn/ice-servers?user=x')).body)).not.toContain('127.0.0.2');
    } finally {
      await b.launch();
    }
    await until(async () => (await turnData())['127.0.0.2']!.healthy === true, 3000, () => 'b healthy again');
    expect((await turnData())['127.0.0.2']!.success_th).toBe(2);
  });

  it('hands out credentials coturn accepts; a wrong secret is refused', async () => {
    const res = await get('/turn/ice-servers?user=alice');
    expect(res.status).toBe(200);
    const ice = (res.body.iceServers as Json[])[0]!;
    const urls = ice.urls as string[];
    expect(urls).toHaveLength(2);
    const m = /^turn:([\d.]+):(\d+)\?transport=udp$/.exec(urls[0]!);
    expect(m).not.toBeNull();
    expect(urls[1]).toBe(`turn:${m![1]}:${m![2]}?transport=tcp`);
    expect(res.body.ttl).toBe(86400);
    expect(String(ice.username)).toMatch(/^\d+:alice$/);
    const granted = allocate(m![1]!, Number(m![2]), String(ice.username), String(ice.credential));
    expect(granted.ok, granted.output).toBe(true);
    const refused = allocate(m![1]!, Number(m![2]), String(ice.username), 'bm90IHRoZSByaWdodCBvbmU=');
    expect(refused.ok).toBe(false);
  }, 40_000);

  it('spreads simultaneous ICE server requests over both servers', async () => {
    const hosts = await Promise.all(Array.from({ length: 40 }, () => get('/turn/ice-servers?user=u').then((r) => ((r.body.iceServers as Json[])[0]!.urls as string[])[0]!)));
    const counts = new Map<string, number>();
    for (const h of hosts) counts.set(h.split(':')[1]!, (counts.get(h.split(':')[1]!) ?? 0) + 1);
    expect(counts.size).toBe(2);
  });

  it('refuses bad queries', async () => {
    expect((await get('/turn/ice-servers?user=has%20space')).status).toBe(400);
  });
});
