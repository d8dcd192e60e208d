import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { SrsBodyError, aliveHealth, listenAddress, originEndpoints, parseListen, parseSrsRegister } from '../../src/pools/origins/srs.js';

/** The register body from seed 003 (SRS's proxy documentation), as SRS's heartbeat sends it. */
const seedBody = {
  device_id: 'origin2',
  ip: '10.78.122.184',
  server: 'vid-46p14mm',
  service: 'z2s3w865',
  pid: '42583',
  rtmp: ['19352'],
  http: ['8082'],
  api: ['19853'],
  srt: ['10082'],
  rtc: ['udp://0.0.0.0:8001'],
};

function refusal(body: unknown): SrsBodyError {
  try {
    parseSrsRegister(body);
  } catch (err) {
    if (err instanceof SrsBodyError) return err;
    throw err;
  }
  throw new Error(`accepted ${JSON.stringify(body)}`);
}

describe('SRS register body', () => {
  it("parses the seed's body: id server-service-pid, endpoints as sent", () => {
    const reg = parseSrsRegister(seedBody);
    expect(reg.serverId).toBe('vid-46p14mm-z2s3w865-42583');
    expect(reg.host).toBe('10.78.122.184');
    expect(reg.deviceId).toBe('origin2');
    expect(reg.listen).toEqual({ rtmp: ['19352'], http: ['8082'], api: ['19853'], srt: ['10082'], rtc: ['udp://0.0.0.0:8001'] });
    expect(originEndpoints(reg)).toEqual({ host: '10.78.122.184', rtmp: '19352', http: '8082', api: '19853', srt: '10082', rtc: 'udp://0.0.0.0:8001' });
  });

  it('accepts optional lists absent, empty or null, and ignores unknown fields', () => {
    const reg = parseSrsRegister({ ip: '127.0.0.1', server: 's', service: 'v', pid: '1', rtmp: ['1935'], http: [], api: null, summaries: { ok: true } });
    expect(reg.listen).toEqual({ rtmp: ['1935'], http: [], api: [], srt: [], rtc: [] });
    expect(reg.deviceId).toBeUndefined();
  });

  it('parses listen entries in SRS’s formats', () => {
    expect(parseListen('1935')).toEqual({ port: 1935 });
    expect(parseListen('10.0.0.2:1935')).toEqual({ host: '10.0.0.2', port: 1935 });
    expect(parseListen('tcp://:1935')).toEqual({ scheme: 'tcp', port: 1935 });
    expect(parseListen('tcp://0.0.0.0:1935')).toEqual({ scheme: 'tcp', port: 1935 });
    expect(parseListen('udp://0.0.0.0:8000')).toEqual({ scheme: 'udp', port: 8000 });
    expect(parseListen('[::1]:8080')).toEqual({ host: '::1', port: 8080 });
    expect(parseListen('origin-a.example:8080')).toEqual({ host: 'origin-a.example', port: 8080 });
    for (const bad of ['', '0', '65536', '-1', 'abc', '1935 ', 'host:', 'host:0', 'a/b:1', '1.5', '999999', 'h:1:2', 'user@h:1']) expect(parseListen(bad), bad).toBeUndefined();
    expect(listenAddress('10.0.0.1', '1935')).toEqual({ host: '10.0.0.1', port: 1935 });
    expect(listenAddress('10.0.0.1', 'tcp://0.0.0.0:1935')).toEqual({ host: '10.0.0.1', port: 1935 });
    expect(listenAddress('10.0.0.1', '10.0.0.9:1935')).toEqual({ host: '10.0.0.9', port: 1935 });
  });

  it('refuses each bad form, naming the field', () => {
    const cases: [unknown, string][] = [
      [null, 'body'],
      ['x', 'body'],
      [[seedBody], 'body'],
      [{ ...seedBody, ip: undefined }, 'body.ip'],
      [{ ...seedBody, ip: '' }, 'body.ip'],
      [{ ...seedBody, ip: 7 }, 'body.ip'],
      [{ ...seedBody, ip: 'a b' }, 'body.ip'],
      [{ ...seedBody, server: '' }, 'body.server'],
      [{ ...seedBody, service: undefined }, 'body.service'],
      [{ ...seedBody, pid: 42583 }, 'body.pid'],
      [{ ...seedBody, pid: 'a/b' }, 'body.pid'],
      [{ ...seedBody, rtmp: undefined }, 'body.rtmp'],
      [{ ...seedBody, rtmp: [] }, 'body.rtmp'],
      [{ ...seedBody, rtmp: '1935' }, 'body.rtmp'],
      [{ ...seedBody, rtmp: [1935] }, 'body.rtmp[0]'],
      [{ ...seedBody, rtmp: ['1935', '70000'] }, 'body.rtmp[1]'],
      [{ ...seedBody, http: ['0'] }, 'body.http[0]'],
      [{ ...seedBody, http: 8080 }, 'body.http'],
      [{ ...seedBody, api: ['x:y'] }, 'body.api[0]'],
      [{ ...seedBody, rtc: ['udp://0.0.0.0:'] }, 'body.rtc[0]'],
      [{ ...seedBody, srt: [{}] }, 'body.srt[0]'],
      [{ ...seedBody, device_id: 5 }, 'body.device_id'],
    ];
    for (const [body, field] of cases) expect(refusal(body).field, JSON.stringify(body)).toBe(field);
  });
});

describe('alive', () => {
  const healthy = { status: 'healthy', successes: 1, failures: 0, since: 0, lastCheck: 0 };
  it('turns unhealthy past aliveSeconds, healthy again when heard from, and writes nothing otherwise', () => {
    expect(aliveHealth(healthy, 1000, 1000 + 300_000, 300_000)).toBeUndefined();
    const stale = aliveHealth(healthy, 1000, 1000 + 300_001, 300_000);
    expect(stale?.status).toBe('unhealthy');
    expect(stale?.lastError).toMatch(/not registered/);
    expect(aliveHealth(stale!, 1000, 1000 + 400_000, 300_000)).toBeUndefined();
    expect(aliveHealth(stale!, 500_000, 500_001, 300_000)?.status).toBe('healthy');
  });
});

describe('config: SRS proxy names', () => {
  it('PROXY_SYSTEM_API → origins.systemApiPort; aliveSeconds defaults to 300', () => {
    expect(loadConfig({ env: { PROXY_SYSTEM_API: '12025' } }).origins).toEqual({ systemApiPort: 12025, aliveSeconds: 300 });
    expect(loadConfig({ env: {} }).origins.systemApiPort).toBeUndefined();
    expect(() => loadConfig({ env: { PROXY_SYSTEM_API: 'x' } })).toThrow(/origins\.systemApiPort \(env PROXY_SYSTEM_API\)/);
  });

  it('PROXY_LOAD_BALANCER_TYPE=redis builds the Redis URL from PROXY_REDIS_*, unless REDIS_URL is set', () => {
    const c = loadConfig({ env: { PROXY_LOAD_BALANCER_TYPE: 'redis', PROXY_REDIS_HOST: '10.0.0.5', PROXY_REDIS_PORT: '6380', PROXY_REDIS_PASSWORD: 'p@ss', PROXY_REDIS_DB: '2' } });
    expect(c.store.type).toBe('redis');
    expect(c.store.redis.url).toBe('redis://:p%40ss@10.0.0.5:6380/2');
    expect(loadConfig({ env: { PROXY_LOAD_BALANCER_TYPE: 'redis' } }).store.redis.url).toBe('redis://127.0.0.1:6379/0');
    const both = loadConfig({ env: { PROXY_LOAD_BALANCER_TYPE: 'redis', PROXY_REDIS_HOST: '10.0.0.5', REDIS_URL: 'redis://r:6379' } });
    expect(both.store.redis.url).toBe('redis://r:6379');
  });

  it('PROXY_LOAD_BALANCER_TYPE=memory forces the memory store; anything else is refused by name', () => {
    expect(loadConfig({ env: { PROXY_LOAD_BALANCER_TYPE: 'memory', REDIS_URL: 'redis://r:6379' } }).store.type).toBe('memory');
    expect(() => loadConfig({ env: { PROXY_LOAD_BALANCER_TYPE: 'etcd' } })).toThrow(/store\.type \(env PROXY_LOAD_BALANCER_TYPE\): must be one of memory, redis/);
    const err = (() => {
      try {
        loadConfig({ env: { PROXY_LOAD_BALANCER_TYPE: 'redis', PROXY_REDIS_PORT: '99999' } });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).problems.join('\n')).toMatch(/PROXY_REDIS_PORT/);
  });
});
