import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import type { Server } from '../../src/core/model.js';
import { newServer } from '../../src/core/server.js';
import { turnCredentials } from '../../src/pools/turn/credentials.js';
import { prometheusBase } from '../../src/pools/turn/prometheus.js';
import { chooseTurnServer } from '../../src/pools/turn/selection.js';

function turn(id: string, status: 'healthy' | 'unhealthy' | 'unknown' = 'healthy'): Server {
  const s = newServer({ id, kind: 'turn', serviceUrl: `turn:${id}:3478`, capacity: 1e12, initialHealth: 'unknown' }, 0, id);
  s.health = { ...s.health, status };
  return s;
}

describe('TURN REST API credentials', () => {
  it('derive username <expiry>:<user> and base64(HMAC-SHA1(secret, username)), as coturn checks them', () => {
    // Reference value from: printf '1700000000:alice' | openssl dgst -sha1 -hmac north-secret -binary | base64
    expect(turnCredentials('north-secret', 'alice', 86_400, (1_700_000_000 - 86_400) * 1000)).toEqual({
      username: '1700000000:alice',
      credential: 'g+jb180fcj+xlpA/2mP60OdIgU0=',
      expiresAt: 1_700_000_000,
    });
  });
});

describe('TURN server choice', () => {
  const rnd = () => 0.99;
  it('follows the original fallbacks', () => {
    expect(chooseTurnServer([], new Map(), rnd)).toBeUndefined();
    expect(chooseTurnServer([turn('a', 'unhealthy'), turn('b', 'unhealthy')], new Map(), rnd)).toMatchObject({ basis: 'no-healthy' });
    expect(chooseTurnServer([turn('a', 'unhealthy'), turn('b')], new Map([['a', 0]]), rnd)).toMatchObject({ server: { id: 'b' }, basis: 'only-healthy' });
    expect(chooseTurnServer([turn('a'), turn('b'), turn('c')], new Map([['a', 9], ['b', 3], ['c', 7]]), rnd)).toMatchObject({ server: { id: 'b' }, basis: 'load' });
    expect(chooseTurnServer([turn('a'), turn('b')], new Map(), rnd)).toMatchObject({ basis: 'random' });
  });

  it('breaks load ties at random', () => {
    const seen = new Set<string>();
    for (const r of [0, 0.99]) seen.add(chooseTurnServer([turn('a'), turn('b')], new Map([['a', 1], ['b', 1]]), () => r)!.server.id);
    expect(seen).toEqual(new Set(['a', 'b']));
  });
});

describe('coturn balancer configuration, accepted unchanged', () => {
  it('reads the seed YAML layout', () => {
    const c = loadConfig({ file: 'test/fixtures/coturn_loadbalancer.yaml', env: {} });
    expect(c.logLevel).toBe('info');
    expect(c.server).toMatchObject({ host: '127.0.0.1', port: 8080 });
    expect(c.turn.servers).toEqual([
      { host: 'turn-a.example.com', privateAddress: '10.0.0.10' },
      { host: 'turn-b.example.com', privateAddress: '10.0.0.20' },
    ]);
    expect(c.turn.healthCheck).toEqual({ intervalSeconds: 15, timeoutSeconds: 5, successThreshold: 3, failureThreshold: 3, port: 5349, protocol: 'tcp' });
    expect(c.turn.loadBalancer).toMatchObject({
      algorithm: 'metrics',
      intervalMinutes: 5,
      durationMinutes: 5,
      timeoutSeconds: 5,
      prometheus: { endpoint: 'prometheus.example.com', port: 80, query: 'sum(node_netstat_Tcp_CurrEstab{ip=~"%s"}) by(ip)' },
    });
  });

  it("reads the README's flat names in the turn section", () => {
    const c = loadConfig({ file: 'test/fixtures/coturn-flat.yaml', env: { TURN_SECRET: 'from-env' } });
    expect(c.turn.servers).toEqual([{ host: 'turn.example.com', privateAddress: '192.168.1.5' }]);
    expect(c.turn.healthCheck).toMatchObject({ intervalSeconds: 10, timeoutSeconds: 2, successThreshold: 2, failureThreshold: 4 });
    expect(c.turn.port).toBe(3479);
    expect(c.turn.loadBalancer).toMatchObject({ algorithm: 'random', intervalMinutes: 1, durationMinutes: 3, prometheus: { endpoint: 'prom', port: 9090, query: 'up{ip=~"%s"}' } });
    expect(c.turn.secret).toBe('from-env');
  });

  it('names a bad value', () => {
    expect(() => loadConfig({ file: 'test/fixtures/coturn-bad.yaml', env: {} })).toThrow(/turn.loadBalancer.algorithm .*must be one of random, metrics, least-allocations/);
  });
});

describe('Prometheus address', () => {
  it('takes a host, a host and port, or a URL', () => {
    expect(prometheusBase({ endpoint: 'prom.example.com', port: 80 })).toBe('http://prom.example.com');
    expect(prometheusBase({ endpoint: 'prom', port: 9090 })).toBe('http://prom:9090');
    expect(prometheusBase({ endpoint: 'https://prom.example.com/sub/' })).toBe('https://prom.example.com/sub');
  });
});
