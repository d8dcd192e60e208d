import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { Server } from '../../src/core/model.js';
import { AGENT_ATTR, agentAttributes, agentTarget, parseAgentReply, planAgent, queryAgent, type AgentCheckResult } from '../../src/probes/agent-check.js';
import { NetworkPolicy } from '../../src/security/network-policy.js';

describe('parseAgentReply (HAProxy agent-check grammar)', () => {
  it.each([
    ['up', { health: 'up', status: 'up' }],
    ['down', { health: 'down', status: 'down' }],
    ['fail', { health: 'down', status: 'fail' }],
    ['stopped', { health: 'down', status: 'stopped' }],
    ['ready', { admin: 'ready' }],
    ['drain', { admin: 'drain' }],
    ['maint', { admin: 'maint' }],
    ['75%', { weightPercent: 75 }],
    ['0%', { weightPercent: 0 }],
    ['150%', { weightPercent: 150 }],
    ['maxconn:30', { maxconn: 30 }],
    ['maxconn:0', { maxconn: 0 }],
  ])('%s', (text, expected) => {
    expect(parseAgentReply(text)).toEqual(expected);
    expect(parseAgentReply(`${text}\n`)).toEqual(expected);
    expect(parseAgentReply(`${text}\r\n`)).toEqual(expected);
  });

  it('mixed replies, any order, spaces, tabs or commas', () => {
    expect(parseAgentReply('up 75% maxconn:30\n')).toEqual({ health: 'up', status: 'up', weightPercent: 75, maxconn: 30 });
    expect(parseAgentReply('maxconn:30,75%\tup')).toEqual({ health: 'up', status: 'up', weightPercent: 75, maxconn: 30 });
    expect(parseAgentReply('  ready ,, up   50%  ')).toEqual({ admin: 'ready', health: 'up', status: 'up', weightPercent: 50 });
    expect(parseAgentReply('drain 0%')).toEqual({ admin: 'drain', weightPercent: 0 });
    expect(parseAgentReply('up ready 37%')).toEqual({ health: 'up', status: 'up', admin: 'ready', weightPercent: 37 });
  });

  it('a description after #', () => {
    expect(parseAgentReply('down#overloaded')).toEqual({ health: 'down', status: 'down', description: 'overloaded' });
    expect(parseAgentReply('fail # cpu 97, publishers 120\n')).toEqual({ health: 'down', status: 'fail', description: 'cpu 97, publishers 120' });
    expect(parseAgentReply('stopped#')).toEqual({ health: 'down', status: 'stopped' });
    // Words after the sharp are description, not commands.
    expect(parseAgentReply('up #drain 10%')).toEqual({ health: 'up', status: 'up', description: 'drain 10%' });
  });

  it('case-insensitive; a later word of the same kind wins', () => {
    expect(parseAgentReply('UP Drain MAXCONN:5')).toEqual({ health: 'up', status: 'up', admin: 'drain', maxconn: 5 });
    expect(parseAgentReply('up down')).toEqual({ health: 'down', status: 'down' });
    expect(parseAgentReply('drain ready 10% 20%')).toEqual({ admin: 'ready', weightPercent: 20 });
  });

  it('only the first line counts', () => {
    expect(parseAgentReply('up 50%\ndown\n')).toEqual({ health: 'up', status: 'up', weightPercent: 50 });
    expect(parseAgentReply('drain\rmaint')).toEqual({ admin: 'drain' });
  });

  it('garbage and unknown words are ignored', () => {
    expect(parseAgentReply('')).toEqual({});
    expect(parseAgentReply('\n')).toEqual({});
    expect(parseAgentReply('hello world')).toEqual({});
    expect(parseAgentReply('100 -5% 7.5% %% maxconn: maxconn:x maxconn:-1 upp')).toEqual({});
    expect(parseAgentReply('\u0000\u00ff\u{1F600} up')).toEqual({ health: 'up', status: 'up' });
    expect(parseAgentReply('x'.repeat(5000))).toEqual({});
  });
});

const server = (over: Partial<Server> = {}, attrs: Server['attributes'] = {}): Server => ({
  id: 's1',
  kind: 'sfu',
  serviceUrl: 'http://127.0.0.1:3000',
  endpoints: {},
  capacity: 500,
  reserved: 0,
  weight: 100,
  labels: {},
  adminState: 'active',
  health: { status: 'healthy', successes: 0, failures: 0, since: 0, lastCheck: 0 },
  attributes: { [AGENT_ATTR.port]: 9707, [AGENT_ATTR.configuredWeight]: 100, [AGENT_ATTR.configuredCapacity]: 500, ...attrs },
  registeredAt: 0,
  lastHeartbeat: 0,
  epoch: 'e1',
  rev: 1,
  ...over,
});
const said = (raw: string): AgentCheckResult => ({ ok: true, reply: parseAgentReply(raw), raw, latencyMs: 1 });
const failed: AgentCheckResult = { ok: false, error: 'agent: ECONNREFUSED', latencyMs: 1 };

describe('planAgent', () => {
  it('a steady agent changes nothing', () => {
    expect(planAgent(server(), said('up 100%'), 'attribute')).toEqual({});
    expect(planAgent(server({ weight: 50 }), said('up 50%'), 'attribute')).toEqual({});
    expect(planAgent(server({}, { [AGENT_ATTR.maxconn]: 30 }), said('up maxconn:30'), 'attribute')).toEqual({});
    expect(planAgent(server({ adminState: 'drain' }, { [AGENT_ATTR.admin]: 'drain' }), said('drain'), 'attribute')).toEqual({});
    expect(planAgent(server({}, { [AGENT_ATTR.down]: 'agent: down' }), said('down'), 'attribute')).toEqual({ downError: 'agent: down' });
  });

  it('down is recorded and sticks until up; a failed or silent agent keeps it', () => {
    const p = planAgent(server(), said('down#overloaded'), 'attribute');
    expect(p).toEqual({ downError: 'agent: down (overloaded)', patch: { attributes: { [AGENT_ATTR.down]: 'agent: down (overloaded)' } } });
    const down = server({}, { [AGENT_ATTR.down]: 'agent: down (overloaded)' });
    expect(planAgent(down, failed, 'attribute')).toEqual({ downError: 'agent: down (overloaded)' });
    expect(planAgent(down, undefined, 'attribute')).toEqual({ downError: 'agent: down (overloaded)' });
    expect(planAgent(down, said('75%'), 'attribute')).toEqual({ downError: 'agent: down (overloaded)', patch: { weight: 75 } });
    expect(planAgent(down, said('up'), 'attribute')).toEqual({ patch: { attributes: { [AGENT_ATTR.down]: '' } } });
  });

  it('an unreachable agent is not an error (HAProxy: connectivity is the regular check)', () => {
    expect(planAgent(server(), failed, 'attribute')).toEqual({});
  });

  it('NN% is relative to the configured weight, rounded, at most 256', () => {
    expect(planAgent(server({}, { [AGENT_ATTR.configuredWeight]: 10 }), said('up 37%'), 'attribute').patch).toEqual({ weight: 4 });
    expect(planAgent(server(), said('0%'), 'attribute').patch).toEqual({ weight: 0 });
    expect(planAgent(server({ weight: 50 }), said('100%'), 'attribute').patch).toEqual({ weight: 100 });
    expect(planAgent(server(), said('400%'), 'attribute').patch).toEqual({ weight: 256 });
  });

  it('maxconn: capacity in connection pools (0 restores the registered capacity), an attribute elsewhere', () => {
    expect(planAgent(server(), said('maxconn:30'), 'capacity').patch).toEqual({ capacity: 30 });
    expect(planAgent(server({ capacity: 30 }), said('maxconn:0'), 'capacity').patch).toEqual({ capacity: 500 });
    expect(planAgent(server(), said('maxconn:30'), 'attribute').patch).toEqual({ attributes: { [AGENT_ATTR.maxconn]: 30 } });
  });

  it('drain/maint from the agent are owned by it, and its ready ends them', () => {
    expect(planAgent(server(), said('drain'), 'attribute')).toEqual({ admin: 'drain', patch: { attributes: { [AGENT_ATTR.admin]: 'drain' } } });
    const drained = server({ adminState: 'drain' }, { [AGENT_ATTR.admin]: 'drain' });
    expect(planAgent(drained, said('maint'), 'attribute')).toEqual({ admin: 'maint', patch: { attributes: { [AGENT_ATTR.admin]: 'maint' } } });
    expect(planAgent(drained, said('ready'), 'attribute')).toEqual({ admin: 'active', patch: { attributes: { [AGENT_ATTR.admin]: '' } } });
    expect(planAgent(server({ adminState: 'maint' }, { [AGENT_ATTR.admin]: 'maint' }), said('up ready'), 'attribute').admin).toBe('active');
    expect(planAgent(server(), said('ready'), 'attribute')).toEqual({});
  });

  it('never changes an admin state an operator set', () => {
    const operatorDrain = server({ adminState: 'drain' });
    expect(planAgent(operatorDrain, said('ready'), 'attribute')).toEqual({});
    expect(planAgent(operatorDrain, said('maint'), 'attribute')).toEqual({});
    expect(planAgent(operatorDrain, said('drain'), 'attribute')).toEqual({});
    // The agent drained, then an operator put the server in maint: no longer the agent's.
    const changed = server({ adminState: 'maint' }, { [AGENT_ATTR.admin]: 'drain' });
    expect(planAgent(changed, said('ready'), 'attribute')).toEqual({ patch: { attributes: { [AGENT_ATTR.admin]: '' } } });
    // The agent drained, an operator undrained: the agent's next drain applies again (as in HAProxy).
    const undrained = server({ adminState: 'active' }, { [AGENT_ATTR.admin]: 'drain' });
    expect(planAgent(undrained, said('drain'), 'attribute')).toEqual({ admin: 'drain' });
  });
});

describe('agentTarget / agentAttributes', () => {
  it('host from serviceUrl unless given; none without a port', () => {
    expect(agentTarget(server())).toEqual({ host: '127.0.0.1', port: 9707 });
    expect(agentTarget(server({ serviceUrl: 'http://[::1]:3000' }))).toEqual({ host: '::1', port: 9707 });
    expect(agentTarget(server({}, { [AGENT_ATTR.host]: 'agent.local', [AGENT_ATTR.send]: 'wcs\n' }))).toEqual({ host: 'agent.local', port: 9707, send: 'wcs\n' });
    expect(agentTarget({ serviceUrl: 'http://x', attributes: {} })).toBeUndefined();
  });

  it('registration attributes', () => {
    expect(agentAttributes({}, 100, 10)).toEqual({});
    expect(agentAttributes({ agentPort: 9707, agentSend: 'x' }, 20, 500)).toEqual({ agentPort: 9707, agentSend: 'x', configuredWeight: 20, configuredCapacity: 500 });
  });
});

describe('queryAgent over TCP', () => {
  let srv: NetServer | undefined;
  afterEach(async () => {
    await new Promise((r) => (srv ? srv.close(r) : r(undefined)));
    srv = undefined;
  });
  const listen = async (onConn: (s: Socket) => void): Promise<number> => {
    srv = createServer(onConn);
    await new Promise<void>((r) => srv!.listen(0, '127.0.0.1', r));
    return (srv.address() as { port: number }).port;
  };

  it('reads one line and closes (xinetd style: write, close)', async () => {
    const port = await listen((s) => s.end('up 75% maxconn:30\n'));
    const r = await queryAgent({ host: '127.0.0.1', port }, 1000);
    expect(r).toMatchObject({ ok: true, raw: 'up 75% maxconn:30', reply: { health: 'up', weightPercent: 75, maxconn: 30 } });
  });

  it('answers at the newline even if the agent keeps the connection open', async () => {
    const port = await listen((s) => s.write('drain\n'));
    const r = await queryAgent({ host: '127.0.0.1', port }, 1000);
    expect(r).toMatchObject({ ok: true, reply: { admin: 'drain' } });
  });

  it('a reply without newline counts when the agent closes', async () => {
    const port = await listen((s) => s.end('down#overloaded'));
    expect(await queryAgent({ host: '127.0.0.1', port }, 1000)).toMatchObject({ ok: true, reply: { health: 'down', description: 'overloaded' } });
  });

  it('sends agent-send first', async () => {
    const port = await listen((s) => s.once('data', (d) => s.end(d.toString() === 'backend/srv1\n' ? 'maint\n' : 'up\n')));
    expect(await queryAgent({ host: '127.0.0.1', port, send: 'backend/srv1\n' }, 1000)).toMatchObject({ ok: true, reply: { admin: 'maint' } });
  });

  it('refused, silent, empty', async () => {
    const closed = await listen(() => {});
    await new Promise((r) => srv!.close(r));
    srv = undefined;
    expect(await queryAgent({ host: '127.0.0.1', port: closed }, 1000)).toMatchObject({ ok: false, error: 'agent: ECONNREFUSED' });
    const silent = await listen(() => {});
    expect(await queryAgent({ host: '127.0.0.1', port: silent }, 150)).toMatchObject({ ok: false, error: 'agent: timeout after 150 ms' });
    await new Promise((r) => srv!.close(r));
    srv = undefined;
    const empty = await listen((s) => s.end());
    expect(await queryAgent({ host: '127.0.0.1', port: empty }, 1000)).toMatchObject({ ok: false });
  });

  it('goes through the SSRF guard', async () => {
    const policy = new NetworkPolicy();
    expect(await queryAgent({ host: '169.254.169.254', port: 9707 }, 1000, policy)).toMatchObject({ ok: false, error: expect.stringContaining('ERR_FORBIDDEN_DESTINATION') });
    const allowOnly = new NetworkPolicy({ allowedNetworks: ['10.0.0.0/8'] });
    const port = await listen((s) => s.end('up\n'));
    expect(await queryAgent({ host: '127.0.0.1', port }, 1000, allowOnly)).toMatchObject({ ok: false, error: expect.stringContaining('ERR_FORBIDDEN_DESTINATION') });
    const named = new NetworkPolicy({ resolve: (_h, _o, cb) => cb(null, [{ address: '169.254.169.254', family: 4 }]) });
    expect(await queryAgent({ host: 'metadata.internal', port }, 1000, named)).toMatchObject({ ok: false, error: expect.stringContaining('ERR_FORBIDDEN_DESTINATION') });
  });
});
