import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { startSwitchboard, type Switchboard } from '../../src/switchboard.js';

/**
 * `agentSend` is written to the agent's port on every probe round: it must not be able to carry a
 * command to a line-protocol service (Redis, memcached, SMTP) on an address Switchboard reaches.
 */
let sb: Switchboard;
beforeAll(async () => {
  sb = await startSwitchboard(loadConfig({ env: { APP_PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', HEALTH_CHECK_INTERVAL: '600000' } }));
});
afterAll(async () => {
  await sb?.close();
});

describe('agentSend', () => {
  it('is one line of printable ASCII: CR, LF and control characters are refused, and nothing is registered', async () => {
    for (const agentSend of ['FLUSHALL\r\n', 'SET x y\n', 'a\u0000b', 'x'.repeat(65)]) {
      const res = await sb.app.inject({
        method: 'POST',
        url: '/register',
        payload: { serverId: 'evil', serviceUrl: 'http://127.0.0.1:6379', workers: 1, agentPort: 6379, agentHost: '127.0.0.1', agentSend },
      });
      expect(res.statusCode, agentSend).toBe(400);
      expect(res.json()).toMatchObject({ field: 'body.agentSend' });
    }
    expect(sb.store.getServer('rooms', 'evil')).toBeUndefined();
    const ok = await sb.app.inject({ method: 'POST', url: '/register', payload: { serverId: 'fine', serviceUrl: 'http://127.0.0.1:1', workers: 1, agentPort: 9707, agentSend: 'hello agent' } });
    expect(ok.statusCode).toBe(200);
  });
});
