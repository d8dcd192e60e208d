import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, redisConnection } from '../../src/config/load.js';

describe('configuration', () => {
  it('the example file documents exactly the defaults', () => {
    expect(loadConfig({ file: 'config/switchboard.example.yaml', env: {} })).toEqual(loadConfig({ env: {} }));
  });

  it('takes the seed names from the environment, converting numbers', () => {
    const c = loadConfig({ env: { APP_PORT: '4000', HEALTH_CHECK_INTERVAL: '1000', LOG_LEVEL: '2', REDIS_URL: 'redis://r:6380', AUTH_TOKEN: 'a-long-token' } });
    expect(c.server.port).toBe(4000);
    expect(c.health.intervalMs).toBe(1000);
    expect(c.logLevel).toBe('debug');
    expect(c.store.type).toBe('redis');
    expect(c.auth.token).toBe('a-long-token');
    expect(redisConnection(c)).toEqual({ mode: 'standalone', url: 'redis://r:6380' });
  });

  it("accepts seed 000's REDIS_HOST", () => {
    const c = loadConfig({ env: { REDIS_HOST: 'redis-service', REDIS_PASSWORD: 'p@ss' } });
    expect(c.store.redis.url).toBe('redis://:p%40ss@redis-service:6379');
  });

  it('names every bad value and where it came from', () => {
    try {
      loadConfig({ env: { APP_PORT: '99999', ROOM_POLICY: 'fastest', HEALTH_CHECK_TIMEOUT: 'soon' } });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const problems = (err as ConfigError).problems;
      expect(problems).toContain('server.port (env APP_PORT): must be <= 65535; got 99999');
      expect(problems).toContain('rooms.policy (env ROOM_POLICY): must be one of most-free-capacity, random, power-of-two-choices; got "fastest"');
      expect(problems.some((p) => p.startsWith('health.timeoutMs (env HEALTH_CHECK_TIMEOUT): must be integer'))).toBe(true);
    }
  });

  it('refuses a timeout not shorter than the interval, and unknown keys', () => {
    expect(() => loadConfig({ env: { HEALTH_CHECK_INTERVAL: '1000', HEALTH_CHECK_TIMEOUT: '1000' } })).toThrow(/timeoutMs \(1000\) must be less than health.intervalMs/);
    expect(() => loadConfig({ file: 'package.json', env: {} })).toThrow(/name \(package.json\): unknown key/);
  });
});

describe('health timeout default', () => {
  it('follows a short interval when not set', () => {
    expect(loadConfig({ env: { HEALTH_CHECK_INTERVAL: '1000' } }).health.timeoutMs).toBe(500);
    expect(loadConfig({ env: {} }).health.timeoutMs).toBe(5000);
  });
});
