import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { turnCredentialTokens } from '../../src/api/auth.js';
import { loadConfig } from '../../src/config/load.js';
import { startSwitchboard, type Switchboard } from '../../src/switchboard.js';

/**
 * GET /turn/ice-servers hands out working TURN credentials (TURN REST API, HMAC with turn.secret):
 * with a token configured it needs one, unless turn.credentialsRequireAuth is false. In-process
 * instances, `app.inject`; the TURN server is a TCP listener (the default probe is a TCP connect).
 */
const secret = 'turn-rest-secret-for-tests';
const writeToken = 'write-token-0123456789';
const readToken = 'read-token-0123456789';
let turnServer: NetServer;
let turnPort: number;
let dir: string;
const started: Switchboard[] = [];

beforeAll(async () => {
  turnServer = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => turnServer.listen(0, '127.0.0.1', resolve));
  turnPort = (turnServer.address() as { port: number }).port;
  dir = mkdtempSync(path.join(tmpdir(), 'sb-turn-credentials-'));
});

afterAll(async () => {
  await Promise.all(started.map((sb) => sb.close()));
  await new Promise((resolve) => turnServer?.close(resolve));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A Switchboard with one healthy TURN server, configured by a YAML file plus `env`. */
async function switchboard(env: Record<string, string>, yamlTurn = ''): Promise<Switchboard> {
  const file = path.join(dir, `config-${started.length}.yaml`);
  writeFileSync(
    file,
    [
      'turn:',
      `  secret: ${secret}`,
      '  servers:',
      `    - { host: 127.0.0.1, port: ${turnPort} }`,
      '  healthCheck: { intervalSeconds: 0.2, timeoutSeconds: 0.1, successThreshold: 1, failureThreshold: 1 }',
      yamlTurn,
    ].join('\n'),
  );
  const config = loadConfig({ file, env: { APP_PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', HEALTH_CHECK_INTERVAL: '600000', ...env } });
  const sb = await startSwitchboard(config);
  started.push(sb);
  const deadline = Date.now() + 5000;
  while (!sb.turn.healthy()) {
    if (Date.now() > deadline) throw new Error('the TURN server did not turn healthy');
    await new Promise((r) => setTimeout(r, 20));
  }
  return sb;
}

async function ice(sb: Switchboard, query = '?user=alice', authorization?: string) {
  const res = await sb.app.inject({ method: 'GET', url: `/turn/ice-servers${query}`, headers: authorization ? { authorization } : {} });
  return { status: res.statusCode, body: res.json() as Record<string, unknown> };
}

/** The credential is the HMAC coturn checks: it would let its holder allocate relays. */
function expectWorkingCredentials(body: Record<string, unknown>, user: string) {
  const [server] = body.iceServers as { urls: string[]; username: string; credential: string }[];
  expect(server!.urls[0]).toBe(`turn:127.0.0.1:${turnPort}?transport=udp`);
  expect(server!.username).toMatch(new RegExp(`^\\d+:${user}$`));
  expect(server!.credential).toBe(createHmac('sha1', secret).update(server!.username).digest('base64'));
}

describe('GET /turn/ice-servers', () => {
  it('needs Authorization: Bearer <AUTH_TOKEN> when AUTH_TOKEN is set (the default credentialsRequireAuth)', async () => {
    const sb = await switchboard({ AUTH_TOKEN: writeToken });
    const missing = await ice(sb);
    expect(missing.status).toBe(401);
    expect(missing.body).toMatchObject({ error: 'unauthorized', field: 'headers.authorization', reason: 'missing' });
    expect(JSON.stringify(missing.body)).not.toContain('credential"');
    const wrong = await ice(sb, '?user=alice', 'Bearer not-the-token-at-all');
    expect(wrong.status).toBe(401);
    expect(wrong.body).toMatchObject({ field: 'headers.authorization', reason: 'wrong token' });
    expect((await ice(sb, '?user=alice', `Basic ${writeToken}`)).status).toBe(401);

    const ok = await ice(sb, '?user=alice', `Bearer ${writeToken}`);
    expect(ok.status).toBe(200);
    expectWorkingCredentials(ok.body, 'alice');
    // Other TURN reads stay open; TURN writes still need the write token.
    expect((await sb.app.inject({ method: 'GET', url: '/coturn' })).statusCode).toBe(200);
    expect((await sb.app.inject({ method: 'POST', url: '/turn/register', payload: { host: '127.0.0.9' } })).statusCode).toBe(401);
  });

  it('accepts the separate read token (TURN_CREDENTIALS_TOKEN) and the write token, and the read token opens no write', async () => {
    const sb = await switchboard({ AUTH_TOKEN: writeToken, TURN_CREDENTIALS_TOKEN: readToken });
    expect((await ice(sb)).status).toBe(401);
    expectWorkingCredentials((await ice(sb, '?user=bob', `Bearer ${readToken}`)).body, 'bob');
    expectWorkingCredentials((await ice(sb, '?user=bob', `bearer  ${writeToken}`)).body, 'bob');
    const write = await sb.app.inject({ method: 'POST', url: '/turn/register', payload: { host: '127.0.0.9' }, headers: { authorization: `Bearer ${readToken}` } });
    expect(write.statusCode).toBe(401);
  });

  it('needs the read token when only turn.credentialsToken is configured (writes stay open then)', async () => {
    const sb = await switchboard({}, `  credentialsToken: ${readToken}`);
    expect((await ice(sb)).status).toBe(401);
    expect((await ice(sb, '?user=alice', `Bearer ${writeToken}`)).status).toBe(401);
    expectWorkingCredentials((await ice(sb, '', `Bearer ${readToken}`)).body, 'switchboard');
  });

  it('stays open with credentialsRequireAuth false, even with AUTH_TOKEN set', async () => {
    const sb = await switchboard({ AUTH_TOKEN: writeToken, TURN_CREDENTIALS_REQUIRE_AUTH: 'false' });
    const res = await ice(sb);
    expect(res.status).toBe(200);
    expectWorkingCredentials(res.body, 'alice');
  });

  it('is open when no token is configured at all (development)', async () => {
    const sb = await switchboard({});
    expectWorkingCredentials((await ice(sb)).body, 'alice');
    expectWorkingCredentials((await ice(sb, '?user=a.b_c~d@e-f')).body, 'a.b_c~d@e-f');
  });

  it("refuses a user with ':' (coturn splits the username on it), out of bounds or with odd characters: 400 naming query.user", async () => {
    const sb = await switchboard({ AUTH_TOKEN: writeToken });
    const auth = `Bearer ${writeToken}`;
    for (const user of ['alice:admin', '1:2', ':', '', 'a'.repeat(129), 'has%20space', '%00', 'caf%C3%A9', 'a%2Fb']) {
      const res = await ice(sb, `?user=${user}`, auth);
      expect(res.status, user).toBe(400);
      expect(res.body, user).toMatchObject({ error: 'bad_request', field: 'query.user' });
    }
    expect((await ice(sb, `?user=${'a'.repeat(128)}`, auth)).status).toBe(200);
  });
});

describe('turnCredentialTokens', () => {
  it('is open only without any token, or when auth is switched off', () => {
    expect(turnCredentialTokens({}, { credentialsRequireAuth: true })).toBeUndefined();
    expect(turnCredentialTokens({ token: writeToken }, { credentialsRequireAuth: true })).toEqual([writeToken]);
    expect(turnCredentialTokens({}, { credentialsRequireAuth: true, credentialsToken: readToken })).toEqual([readToken]);
    expect(turnCredentialTokens({ token: writeToken }, { credentialsRequireAuth: true, credentialsToken: readToken })).toEqual([writeToken, readToken]);
    expect(turnCredentialTokens({ token: writeToken }, { credentialsRequireAuth: false, credentialsToken: readToken })).toBeUndefined();
  });

  it('defaults to requiring auth, and checks the read token like the write token', () => {
    expect(loadConfig({ env: {} }).turn.credentialsRequireAuth).toBe(true);
    expect(loadConfig({ env: { TURN_CREDENTIALS_TOKEN: readToken } }).turn.credentialsToken).toBe(readToken);
    expect(() => loadConfig({ env: { TURN_CREDENTIALS_TOKEN: 'short' } })).toThrow(/turn\.credentialsToken \(env TURN_CREDENTIALS_TOKEN\)/);
    expect(() => loadConfig({ env: { TURN_CREDENTIALS_REQUIRE_AUTH: 'maybe' } })).toThrow(/turn\.credentialsRequireAuth/);
  });
});
