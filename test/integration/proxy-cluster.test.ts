import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/ports.js';
import { startSwitchboard, type SwitchboardProcess } from '../helpers/process.js';
import { parseResponses, startBackend, type Backend } from '../helpers/proxy.js';
import { startEcho, until, wsIdentity, type EchoServer } from '../helpers/ws.js';

/**
 * Multi-process mode (seed 002's cluster): `switchboard serve` with WORKER_COUNT=2 runs the API,
 * health checks and store in the primary and the proxy in two worker processes sharing PORT.
 */
const dir = mkdtempSync(join(tmpdir(), 'sb-proxy-cluster-'));
let sb: SwitchboardProcess;
let proxyPort: number;
let tlsPort: number;
const backends: Backend[] = [];
let late: Backend;
const sfus: Record<string, EchoServer> = {};

/** The proxy's worker processes: the primary's children. */
function workerPids(): number[] {
  try {
    return execFileSync('ps', ['--ppid', String(sb.pid), '-o', 'pid='], { encoding: 'utf8' })
      .split('\n')
      .map((l) => Number(l.trim()))
      .filter((n) => n > 0);
  } catch {
    return []; // ps exits 1 when there are none
  }
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** `200`, or the status and body of any other answer (so a failure says what went wrong). */
const ok = (r: { status: number; body: string }): string => (r.status === 200 ? '200' : `${r.status} ${r.body}`);

/** One GET through the proxy on a new connection. */
function proxyGet(path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: proxyPort, path, agent: false, headers: { connection: 'close' } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function api(method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await request(sb.url + path, {
    method: method as 'GET',
    ...(body !== undefined ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {}),
  });
  const text = await res.body.text();
  return { status: res.statusCode, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

/** Opens `n` keep-alive connections, one answered request each; resolves with the open sockets. */
async function keepAliveConns(n: number): Promise<Socket[]> {
  const socks: Socket[] = [];
  for (let i = 0; i < n; i++) {
    const s = connect({ port: proxyPort, host: '127.0.0.1' });
    socks.push(s);
    await new Promise<void>((resolve, reject) => {
      let raw = Buffer.alloc(0);
      s.once('error', reject);
      s.on('data', (d: Buffer) => {
        raw = Buffer.concat([raw, d]);
        if (parseResponses(raw, false, true).length > 0) resolve();
      });
      s.write(`GET /keepalive-${i} HTTP/1.1\r\nHost: x\r\n\r\n`);
    });
  }
  return socks;
}

/** The pids owning the established server-side sockets of the proxy port (`ss -p`). */
function acceptingPids(): Set<number> {
  const out = execFileSync('ss', ['-tnpH', 'state', 'established', `( sport = :${proxyPort} )`], { encoding: 'utf8' });
  return new Set([...out.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1])));
}

beforeAll(async () => {
  for (const id of ['b1', 'b2']) backends.push(await startBackend(id));
  late = await startBackend('late');
  for (const name of ['s1', 's2']) sfus[name] = await startEcho(name);
  proxyPort = await freePort();
  tlsPort = await freePort();
  for (const name of ['a.test', 'b.test']) {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}`, '-days', '1', '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.crt`)], { stdio: 'ignore' });
  }
  const backendsFile = join(dir, 'backends.json');
  writeFileSync(backendsFile, JSON.stringify({ backends: backends.map((b) => ({ host: '127.0.0.1', port: b.port })) }));
  const configFile = join(dir, 'switchboard.yaml');
  writeFileSync(
    configFile,
    JSON.stringify({
      server: { host: '127.0.0.1', shutdownTimeoutMs: 3_000 },
      // The stand-in SFUs too: one slow probe must not take a server holding rooms out.
      health: { failureThreshold: 3 },
      proxy: {
        host: '127.0.0.1',
        // fall 3: with HEALTH_CHECK_INTERVAL=200 the probe timeout is under 200 ms, which one slow
        // moment on a loaded machine can miss; one miss must not take both backends out.
        pools: { web: { healthCheck: { path: '/health', rise: 1, fall: 3 } } },
        routes: [{ name: 'rooms', match: { pathPrefix: '/rooms/' }, room: { pathSegment: 2 } }],
        tls: {
          port: tlsPort,
          certs: ['a.test', 'b.test'].map((n) => ({ cert: join(dir, `${n}.crt`), key: join(dir, `${n}.key`), servernames: [n] })),
        },
      },
    }),
  );
  sb = await startSwitchboard({
    env: { PORT: String(proxyPort), WORKER_COUNT: '2', HEALTH_CHECK_INTERVAL: '200', LOG_LEVEL: 'info' },
    args: ['--config-file', configFile, '--backends', backendsFile],
  });
  await until('both backends serving through the proxy', async () => {
    await proxyGet('/warmup').catch(() => undefined);
    return backends.every((b) => b.hits > 0);
  });
}, 60_000);

afterAll(async () => {
  if (sb && sb.child.exitCode === null) await sb.stop('SIGKILL');
  await Promise.all([...backends, late].map((b) => b?.stop()));
  await Promise.all(Object.values(sfus).map((s) => s.stop()));
  rmSync(dir, { recursive: true, force: true });
});

describe('proxy cluster (WORKER_COUNT=2)', () => {
  it('runs two worker processes; requests through PORT succeed and spread over both backends', async () => {
    expect(workerPids()).toHaveLength(2);
    const before = backends.map((b) => b.hits);
    for (let i = 0; i < 40; i++) {
      const r = await proxyGet(`/spread/${i}`);
      expect(`${r.status} ${r.body}`).toMatch(/^200 /);
      expect(JSON.parse(r.body)).toMatchObject({ url: `/spread/${i}` });
    }
    const got = backends.map((b, i) => b.hits - before[i]!);
    expect(got[0]! + got[1]!).toBe(40);
    expect(got[0]).toBeGreaterThanOrEqual(10);
    expect(got[1]).toBeGreaterThanOrEqual(10);
  });

  it('both workers accept connections (ss shows both pids on the proxy port)', async () => {
    const socks = await keepAliveConns(10);
    try {
      const pids = workerPids();
      const owners = acceptingPids();
      expect([...owners].sort()).toEqual([...pids].sort());
      expect(owners.has(sb.pid)).toBe(false);
    } finally {
      for (const s of socks) s.destroy();
    }
  });

  it("the primary's /metrics aggregates the workers' proxy counts", async () => {
    const count = async () => {
      const text = await (await fetch(`${sb.url}/metrics`)).text();
      let sum = 0;
      for (const m of text.matchAll(/^switchboard_proxy_requests_total\{([^}]*)\} (\d+)/gm)) if (m[1]!.includes('pool="web"')) sum += Number(m[2]);
      return sum;
    };
    const before = await count();
    for (let i = 0; i < 20; i++) expect(ok(await proxyGet(`/m/${i}`))).toBe('200');
    // Connections alternate between the workers: both counts must be in the sum.
    expect((await count()) - before).toBe(20);
  });

  it('TLS termination in the workers: SNI picks the certificate, backends see x-forwarded-proto https', async () => {
    for (const name of ['a.test', 'b.test', 'other.test']) {
      const answer = await new Promise<{ cn: unknown; raw: Buffer }>((resolve, reject) => {
        const s = tlsConnect({ port: tlsPort, host: '127.0.0.1', servername: name, rejectUnauthorized: false }, () => {
          const cn = s.getPeerCertificate().subject.CN;
          s.write(`GET /tls HTTP/1.1\r\nHost: ${name}\r\nConnection: close\r\n\r\n`);
          let raw = Buffer.alloc(0);
          s.on('data', (d: Buffer) => (raw = Buffer.concat([raw, d])));
          s.on('end', () => resolve({ cn, raw }));
        });
        s.on('error', reject);
      });
      expect(answer.cn).toBe(name === 'other.test' ? 'a.test' : name);
      const [res] = parseResponses(answer.raw);
      expect(`${res?.status} ${res?.body.toString()}`).toMatch(/^200 /);
      expect((JSON.parse(res!.body.toString()) as { headers: Record<string, string> }).headers['x-forwarded-proto']).toBe('https');
    }
    expect(sb.output()).toContain(`proxy TLS listening on https://127.0.0.1:${tlsPort}`);
  });

  it('a backend registered at run time through the API reaches the workers', async () => {
    const r = await api('POST', '/backends', { host: '127.0.0.1', port: late.port, id: 'late' });
    expect(r.status).toBe(200);
    await until(
      'the late backend gets traffic from both workers',
      async () => {
        for (let i = 0; i < 6; i++) await proxyGet('/late');
        return late.hits >= 4;
      },
      10_000,
    );
    // Removed: no more traffic.
    expect((await api('DELETE', '/backends/web/late')).status).toBe(200);
    await new Promise((r) => setTimeout(r, 300));
    const hits = late.hits;
    for (let i = 0; i < 10; i++) expect(ok(await proxyGet('/after-delete'))).toBe('200');
    expect(late.hits).toBe(hits);
  });

  it('a room placed through the API is found by the workers (room lookup over IPC)', async () => {
    for (const name of ['s1', 's2']) {
      const s = sfus[name]!;
      expect((await api('POST', '/register', { serverId: name, serviceUrl: s.url, wsUrl: s.wsUrl, workers: 1 })).status).toBe(200);
    }
    const owners = new Map<string, string>();
    for (const roomId of ['c-1', 'c-2', 'c-3', 'c-4']) {
      const placed = await api('POST', `/rooms/${roomId}`, {});
      expect(placed.status).toBe(200);
      const owner = Object.values(sfus).find((s) => s.wsUrl === placed.body.wsUrl)!.name;
      owners.set(roomId, owner);
      // Straight away, on new connections (so both workers answer some).
      for (let i = 0; i < 4; i++) {
        const r = await wsIdentity(proxyPort, `/rooms/${roomId}?peer=${i}`);
        expect(r.server).toBe(owner);
        r.ws.sendText('hi');
        expect((await r.ws.next()).payload.toString()).toBe('hi');
        r.ws.destroy();
      }
    }
    expect(new Set(owners.values()).size).toBe(2);
    const unknown = await proxyGet('/rooms/never-placed');
    expect(unknown.status).toBe(404);
    expect(JSON.parse(unknown.body)).toMatchObject({ error: 'room_not_found' });
  });

  it('a worker killed with SIGKILL is replaced; requests keep working', async () => {
    const [victim, other] = workerPids();
    expect(victim).toBeGreaterThan(0);
    process.kill(victim!, 'SIGKILL');
    const replaced = await until('a new worker', () => {
      const now = workerPids();
      return now.length === 2 && !now.includes(victim!) && now.includes(other!) ? now : undefined;
    });
    expect(replaced).toHaveLength(2);
    // Every request succeeds, and the new worker takes its share.
    await until('the new worker accepts connections', async () => {
      const socks = await keepAliveConns(6);
      try {
        return acceptingPids().size === 2;
      } finally {
        for (const s of socks) s.destroy();
      }
    });
    for (let i = 0; i < 20; i++) expect(ok(await proxyGet(`/after-kill/${i}`))).toBe('200');
  });

  it('SIGTERM to the primary: an open WebSocket keeps working during the grace, then it and every worker exit 0', async () => {
    const pids = workerPids();
    expect(pids).toHaveLength(2);
    const held = await wsIdentity(proxyPort, '/rooms/c-1?peer=held');
    const seen = sb.output().length;
    const t0 = Date.now();
    const stopped = sb.stop('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    // Draining: the tunnel under way still carries frames; new connections are refused.
    held.ws.sendText('still here');
    expect((await held.ws.next()).payload.toString()).toBe('still here');
    await expect(proxyGet('/after-sigterm')).rejects.toThrow();
    const code = await stopped;
    expect(code).toBe(0);
    // proxy grace is 60 % of server.shutdownTimeoutMs (3 s): the tunnel is cut at ~1.8 s.
    expect(Date.now() - t0).toBeLessThan(3_000);
    expect(held.ws.isClosed()).toBe(true);
    await until('workers gone', () => pids.every((p) => !alive(p)), 3_000);
    // Workers stopped by the primary are not "died; starting another".
    expect(sb.output().slice(seen)).not.toMatch(/proxy worker died|restart/);
  });
});
