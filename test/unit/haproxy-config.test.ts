import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import type { Server } from '../../src/core/model.js';
import { renderHaproxyConfig, roomExpression } from '../../src/haproxy/config.js';
import { checkConfigFile } from '../../src/haproxy/process.js';
import { isErrorOutput, parseCsv, parseMap, parseRuntimeAddress, parseServersState } from '../../src/haproxy/runtime.js';
import type { HaproxyConfig } from '../../src/haproxy/schema.js';
import { desiredState, serverTarget } from '../../src/haproxy/sync.js';

const dir = mkdtempSync(join(tmpdir(), 'sb-haproxy-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The haproxy section as loadConfig fills it from a YAML file. */
function haproxyConfig(section: Record<string, unknown>): HaproxyConfig {
  const file = join(dir, `c-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, JSON.stringify({ haproxy: { runDir: dir, ...section } }));
  return loadConfig({ file, env: {} }).haproxy;
}

const paths = { socket: join(dir, 'admin.sock'), mapFile: join(dir, 'switchboard-rooms.map') };
writeFileSync(paths.mapFile, '');

const keyLines = (text: string) =>
  text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#') && !l.startsWith('use-server sb') && !l.startsWith('timeout'));

describe('haproxy.cfg rendering', () => {
  it("renders seed 004's layout for the rooms pool", () => {
    const cfg = haproxyConfig({ frontend: { port: 8443 }, web: { servers: [{ host: 'localhost', port: 8180 }] }, media: { slots: 3 } });
    const text = renderHaproxyConfig(cfg, paths);
    expect(keyLines(text)).toEqual([
      'global',
      `stats socket ${paths.socket} mode 600 level admin expose-fd listeners`,
      'stats timeout 30s',
      'defaults',
      'mode http',
      'frontend switchboard',
      'bind *:8443',
      'acl is_websocket hdr(Upgrade) -i WebSocket',
      'acl is_websocket hdr(Sec-WebSocket-Key) -m found',
      'use_backend switchboard_media if is_websocket',
      'default_backend switchboard_web',
      'backend switchboard_media',
      'http-request add-header X-Client-IP %ci:%cp',
      'balance roundrobin',
      `http-request set-var(txn.sb_srv) url_param(roomId),url_dec,map(${paths.mapFile})`,
      'server-template sb 1-3 0.0.0.0:0 disabled maxconn 100 weight 100 check inter 2s',
      'backend switchboard_web',
      'server web1 localhost:8180 maxconn 100 check',
    ]);
    // One static use-server line per slot; the runtime map decides which one matches.
    expect(text).toContain('use-server sb1 if { var(txn.sb_srv) -m str sb1 }');
    expect(text).toContain('use-server sb3 if { var(txn.sb_srv) -m str sb3 }');
    expect(text).not.toContain('use-server sb4');
    expect(text).toMatch(/timeout tunnel 3600s/);
    expect(text).toMatch(/timeout connect 5s/);
  });

  it('TLS, leastconn, agent-check, cookie stickiness, state file, path room ids', () => {
    const cfg = haproxyConfig({
      frontend: { host: '127.0.0.1', port: 443, tls: { crt: '/etc/pki/tls/example.com/cert.pem' } },
      media: { balance: 'leastconn', maxconn: 250, slots: 2, agent: { port: 9707, interMs: 5000 }, cookie: true, checkIntervalMs: 500 },
      room: { source: 'path', segment: 2 },
      stateFile: join(dir, 'state'),
      maxconn: 2000,
      timeouts: { tunnelMs: 1500 },
    });
    const text = renderHaproxyConfig(cfg, paths);
    expect(text).toContain('bind 127.0.0.1:443 ssl crt /etc/pki/tls/example.com/cert.pem');
    expect(text).toContain('balance leastconn');
    expect(text).toContain('cookie SERVERID insert indirect nocache dynamic');
    expect(text).toContain('server-template sb 1-2 0.0.0.0:0 disabled maxconn 250 weight 100 check inter 500ms agent-check agent-port 9707 agent-inter 5s');
    expect(text).toContain(`server-state-file ${join(dir, 'state')}`);
    expect(text).toContain('load-server-state-from-file global');
    expect(text).toContain('    maxconn 2000');
    expect(text).toContain('timeout tunnel 1500ms');
    expect(text).toContain(`path,field(3,/),url_dec,map(${paths.mapFile})`);
    expect(roomExpression({ source: 'query', param: 'room', segment: 2 })).toBe('url_param(room)');
  });

  it('the ipv4@ stats socket form passes through', () => {
    const cfg = haproxyConfig({ socket: 'ipv4@127.0.0.1:9999' });
    expect(renderHaproxyConfig(cfg)).toContain('stats socket ipv4@127.0.0.1:9999 mode 600 level admin');
  });

  describe('real HAProxy accepts it (haproxy -c)', () => {
    it('plain, with web servers, roundrobin', async () => {
      const cfg = haproxyConfig({ frontend: { port: 18443 }, web: { servers: [{ host: '127.0.0.1', port: 8180 }, { host: '::1', port: 8181 }] } });
      const file = join(dir, 'plain.cfg');
      writeFileSync(file, renderHaproxyConfig(cfg, paths));
      await expect(checkConfigFile('haproxy', file)).resolves.toMatch(/valid/i);
    });

    it('TLS, leastconn, agent, cookies, path room ids, state file, many slots', async () => {
      const pem = join(dir, 'cert.pem');
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'crt.pem'), '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
      writeFileSync(pem, execFileSync('cat', [join(dir, 'crt.pem'), join(dir, 'key.pem')]));
      const cfg = haproxyConfig({
        frontend: { port: 18444, tls: { crt: pem } },
        media: { balance: 'leastconn', slots: 500, agent: { port: 9707, interMs: 500 }, cookie: true },
        room: { source: 'path', segment: 2 },
        stateFile: join(dir, 'state'),
      });
      const file = join(dir, 'tls.cfg');
      writeFileSync(file, renderHaproxyConfig(cfg, paths));
      await expect(checkConfigFile('haproxy', file)).resolves.toMatch(/valid/i);
    });

    it('a broken configuration is refused with HAProxy’s message', async () => {
      const file = join(dir, 'bad.cfg');
      writeFileSync(file, renderHaproxyConfig(haproxyConfig({}), paths).replace('balance roundrobin', 'balance round robin'));
      await expect(checkConfigFile('haproxy', file)).rejects.toThrow(/haproxy -c refused/);
    });
  });
});

describe('Runtime API parsing', () => {
  it('show servers state', () => {
    const text = `1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port
3 media 1 sb1 127.0.0.1 2 4 50 100 0 6 3 4 6 0 0 0 - 18181 - 0 0 - - 0
3 media 2 sb2 0.0.0.0 0 5 100 100 14 1 0 0 14 0 0 0 - 0 - 0 0 - - 0
3 media 3 sb3 127.0.0.1 2 12 7 100 0 6 3 4 6 0 0 0 - 18182 - 0 0 - - 0

`;
    const rows = parseServersState(text);
    expect(rows.map((r) => [r.name, r.addr, r.port, r.state, r.weight, r.up])).toEqual([
      ['sb1', '127.0.0.1', 18181, 'ready', 50, true],
      ['sb2', '0.0.0.0', 0, 'maint', 100, false],
      ['sb3', '127.0.0.1', 18182, 'drain', 7, true],
    ]);
  });

  it('show map, show stat, errors, addresses', () => {
    expect(parseMap('0x56251d0ee0b0 r1 sb1\n0x56251d0ee0c0 room-2 sb12\n\n')).toEqual([
      { ref: '0x56251d0ee0b0', key: 'r1', value: 'sb1' },
      { ref: '0x56251d0ee0c0', key: 'room-2', value: 'sb12' },
    ]);
    expect(parseCsv('# pxname,svname,status,weight,\nfe,FRONTEND,OPEN,,\nmedia,sb1,UP,50,\n')).toEqual([
      { pxname: 'fe', svname: 'FRONTEND', status: 'OPEN', weight: '' },
      { pxname: 'media', svname: 'sb1', status: 'UP', weight: '50' },
    ]);
    for (const bad of ['No such server.\n\n', 'entry not found.\n\n', 'Key not found.\n\n', 'Unknown command. Please enter one of the following commands only :\n', "'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n"]) {
      expect(isErrorOutput(bad), bad).toBe(true);
    }
    expect(isErrorOutput("IP changed from '0.0.0.0' to '127.0.0.1', port changed from '+0' to '18181' by 'stats socket command'\n\n")).toBe(false);
    expect(isErrorOutput('\n')).toBe(false);
    expect(parseRuntimeAddress('/run/haproxy/admin.sock')).toEqual({ path: '/run/haproxy/admin.sock' });
    expect(parseRuntimeAddress('unix@/tmp/a.sock')).toEqual({ path: '/tmp/a.sock' });
    expect(parseRuntimeAddress('ipv4@127.0.0.1:9999')).toEqual({ host: '127.0.0.1', port: 9999 });
    expect(parseRuntimeAddress('127.0.0.1:9999')).toEqual({ host: '127.0.0.1', port: 9999 });
    expect(parseRuntimeAddress('ipv6@[::1]:9999')).toEqual({ host: '::1', port: 9999 });
  });
});

describe('sync decisions', () => {
  const server = (over: Partial<Server>): Server =>
    ({
      id: 's',
      kind: 'sfu',
      serviceUrl: 'http://10.0.0.5:3000',
      endpoints: {},
      capacity: 10,
      reserved: 0,
      weight: 100,
      labels: {},
      adminState: 'active',
      health: { status: 'healthy', successes: 1, failures: 0, since: 0, lastCheck: 0 },
      attributes: {},
      registeredAt: 0,
      lastHeartbeat: 0,
      epoch: 'e',
      rev: 1,
      ...over,
    }) as Server;

  it('health and admin state → ready / drain / maint', () => {
    expect(desiredState(server({}))).toBe('ready');
    expect(desiredState(server({ adminState: 'drain' }))).toBe('drain');
    expect(desiredState(server({ adminState: 'maint' }))).toBe('maint');
    expect(desiredState(server({ health: { status: 'unhealthy', successes: 0, failures: 1, since: 0, lastCheck: 0 } }))).toBe('maint');
    expect(desiredState(server({ adminState: 'drain', health: { status: 'unknown', successes: 0, failures: 0, since: 0, lastCheck: 0 } }))).toBe('maint');
  });

  it('the address HAProxy connects to', () => {
    expect(serverTarget(server({}), 'ws')).toEqual({ host: '10.0.0.5', port: 3000 });
    expect(serverTarget(server({ endpoints: { ws: 'wss://sfu1.example.com' } }), 'ws')).toEqual({ host: 'sfu1.example.com', port: 443 });
    expect(serverTarget(server({ endpoints: { ws: 'ws://[fd00::5]:4443/ws' } }), 'ws')).toEqual({ host: 'fd00::5', port: 4443 });
    expect(serverTarget(server({ endpoints: { ws: 'ws://10.0.0.6:4443' } }), 'service')).toEqual({ host: '10.0.0.5', port: 3000 });
  });
});
