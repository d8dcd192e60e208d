import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseResponses, startProxy, type ProxyUnderTest } from '../helpers/proxy.js';
import { startEcho, wsIdentity, type EchoServer } from '../helpers/ws.js';

/**
 * TLS termination (proxy.tls): certificates chosen by SNI (exact names, the first for anything
 * else), requests and WebSockets (wss) passed on to plain backends with x-forwarded-proto https.
 */
const dir = mkdtempSync(join(tmpdir(), 'sb-proxy-tls-'));
let pu: ProxyUnderTest;
let tlsPort: number;
let web: EchoServer;
let media: EchoServer;

function selfSigned(name: string, san?: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  const ext = san ? ['-addext', `subjectAltName=${san}`] : [];
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}`, '-days', '1', ...ext, '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { cert, key };
}

/** Connects with `servername` (none when undefined) and resolves with the socket once secure. */
function tlsOpen(servername: string | undefined): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port: tlsPort, host: '127.0.0.1', rejectUnauthorized: false, ...(servername !== undefined ? { servername } : {}) });
    s.once('secureConnect', () => resolve(s));
    s.once('error', reject);
  });
}

async function peerCn(servername: string | undefined): Promise<string> {
  const s = await tlsOpen(servername);
  const cn = s.getPeerCertificate().subject.CN;
  s.destroy();
  return Array.isArray(cn) ? cn.join(',') : String(cn);
}

/** One HTTP/1.1 request over TLS; the answer parsed. */
async function httpsGet(servername: string, path: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const s = await tlsOpen(servername);
  return new Promise((resolve, reject) => {
    let raw = Buffer.alloc(0);
    const timer = setTimeout(() => reject(new Error('no answer over TLS')), 5_000);
    s.on('data', (d: Buffer) => {
      raw = Buffer.concat([raw, d]);
      const [res] = parseResponses(raw, false, true);
      if (!res) return;
      clearTimeout(timer);
      s.destroy();
      resolve({ status: res.status, json: JSON.parse(res.body.toString()) as Record<string, unknown> });
    });
    s.write(`GET ${path} HTTP/1.1\r\nHost: ${servername}\r\n\r\n`);
  });
}

beforeAll(async () => {
  const a = selfSigned('a.test');
  const b = selfSigned('b.test');
  // Without servernames: the names come from the certificate (SAN DNS entries, else its CN).
  const c = selfSigned('c.test', 'DNS:c.test,DNS:*.c.test,DNS:other-c.test');
  const d = selfSigned('d.test');
  web = await startEcho('web');
  media = await startEcho('media');
  pu = await startProxy({
    backends: [
      { host: '127.0.0.1', port: web.port, pool: 'web', id: 'web' },
      { host: '127.0.0.1', port: media.port, pool: 'media', id: 'media' },
    ],
    pools: { web: { healthCheck: { fall: 3 } }, media: { healthCheck: { fall: 3 } } },
    tls: {
      port: 0,
      certs: [
        { ...a, servernames: ['a.test'] },
        { ...b, servernames: ['b.test', '*.b.test'] },
        c,
        d,
      ],
    },
  });
  expect(pu.sb.proxyTlsUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
  tlsPort = Number(new URL(pu.sb.proxyTlsUrl!).port);
  expect(tlsPort).toBeGreaterThan(0);
  expect(tlsPort).not.toBe(pu.port);
});

afterAll(async () => {
  await pu?.close();
  await Promise.all([web?.stop(), media?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

describe('TLS termination', () => {
  it('SNI picks the certificate: a.test → CN a.test, b.test → CN b.test (case-insensitive, wildcards)', async () => {
    expect(await peerCn('a.test')).toBe('a.test');
    expect(await peerCn('b.test')).toBe('b.test');
    expect(await peerCn('B.Test')).toBe('b.test');
    expect(await peerCn('x.b.test')).toBe('b.test');
    expect(await peerCn('a.test.')).toBe('a.test');
    expect(await peerCn('b.test.')).toBe('b.test');
  });

  it("a certificate listed without servernames serves the names it is for (SAN, else CN)", async () => {
    expect(await peerCn('c.test')).toBe('c.test');
    expect(await peerCn('x.c.test')).toBe('c.test');
    expect(await peerCn('other-c.test')).toBe('c.test');
    expect(await peerCn('d.test')).toBe('d.test');
  });

  it('a certificate that cannot be read or does not match its key fails the start, naming the entry', async () => {
    const bad = selfSigned('bad.test');
    const other = selfSigned('other.test');
    await expect(startProxy({ backends: [], tls: { port: 0, certs: [{ cert: join(dir, 'missing.crt'), key: bad.key }] } })).rejects.toThrow(/proxy\.tls\.certs\[0\].*missing\.crt/);
    await expect(startProxy({ backends: [], tls: { port: 0, certs: [bad, { cert: bad.cert, key: other.key }] } })).rejects.toThrow(/proxy\.tls\.certs\[1\] \(cert .*bad\.test\.crt, key .*other\.test\.key\)/);
  });

  it('an unknown name, or no SNI at all, gets the first certificate', async () => {
    expect(await peerCn('unknown.example')).toBe('a.test');
    expect(await peerCn(undefined)).toBe('a.test');
  });

  it('requests go through to a plain backend with x-forwarded-proto https', async () => {
    for (const name of ['a.test', 'b.test']) {
      const r = await httpsGet(name, `/page?via=${name}`);
      expect(r.status).toBe(200);
      expect(r.json).toMatchObject({ server: 'web', url: `/page?via=${name}`, xfp: 'https' });
    }
  });

  it('the plain listener still says x-forwarded-proto http', async () => {
    const res = await fetch(`${pu.url}/plain`);
    expect(await res.json()).toMatchObject({ server: 'web', xfp: 'http' });
  });

  it('a TLS WebSocket (wss through the terminator) reaches the media pool; frames flow', async () => {
    const r = await wsIdentity(tlsPort, '/wss', { tls: { servername: 'b.test' }, host: 'b.test' });
    expect(r.server).toBe('media');
    expect(r.xfp).toBe('https');
    expect(r.ws.acceptOk).toBe(true);
    r.ws.sendText('over tls');
    expect((await r.ws.next()).payload.toString()).toBe('over tls');
    r.ws.sendClose();
    const f = await r.ws.next();
    expect(f.opcode).toBe(0x8);
    await r.ws.closed;
  });
});
