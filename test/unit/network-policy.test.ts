import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { AppError } from '../../src/errors.js';
import { probeHttp } from '../../src/probes/http.js';
import { StunProber } from '../../src/probes/stun.js';
import { probeTcp, probeTls } from '../../src/probes/tcp.js';
import { cidrProblems, embeddedIpv4, FORBIDDEN_DESTINATION, NetworkPolicy, parseCidr, type Resolver } from '../../src/security/network-policy.js';

/** A resolver answering from a table (names not in it: ENOTFOUND), counting lookups. */
function fakeResolver(table: Record<string, string[] | (() => string[])>): Resolver & { calls: number } {
  const r = ((hostname, _options, callback) => {
    r.calls++;
    const entry = table[hostname];
    const list = typeof entry === 'function' ? entry() : entry;
    setImmediate(() => {
      if (!list) return callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), []);
      callback(
        null,
        list.map((address) => ({ address, family: address.includes(':') ? 6 : 4 })),
      );
    });
  }) as Resolver & { calls: number };
  r.calls = 0;
  return r;
}

const REFUSED = [
  '169.254.169.254',
  '169.254.0.1',
  '169.254.255.255',
  'fe80::1',
  'FE80::abcd:1',
  'febf::1',
  'fd00:ec2::254',
  '::ffff:169.254.169.254',
  '::ffff:a9fe:a9fe',
  '[::ffff:169.254.169.254]',
  '0.0.0.0',
  '0.1.2.3',
  '224.0.0.1',
  '239.255.255.250',
  '255.255.255.255',
  'ff02::1',
  '::',
];
const ALLOWED_BY_DEFAULT = ['127.0.0.1', '127.9.9.9', '::1', '10.1.2.3', '172.16.0.1', '192.168.1.1', 'fd12:3456::1', 'fd00:ec2::253', '8.8.8.8', '2001:db8::1', '::ffff:127.0.0.1', '[::1]'];

describe('NetworkPolicy: addresses', () => {
  const policy = new NetworkPolicy();

  it.each(REFUSED)('refuses %s by default', (ip) => {
    expect(policy.refusal(ip)).toMatch(/link-local|reserved/);
    expect(policy.isAllowed(ip)).toBe(false);
  });

  it.each(ALLOWED_BY_DEFAULT)('allows %s by default (loopback, private and public ranges)', (ip) => {
    expect(policy.refusal(ip)).toBeUndefined();
  });

  it('refuses what is not an IP address', () => {
    expect(policy.refusal('example.com')).toBe('not an IP address');
  });

  it('with allowedNetworks allows only inside them (IPv4-mapped IPv6 too); the refused ranges stay refused', () => {
    const locked = new NetworkPolicy({ allowedNetworks: ['10.0.0.0/8', '127.0.0.1/32', 'fd00::/8', '169.254.0.0/16'] });
    for (const ip of ['10.0.0.1', '10.255.255.255', '127.0.0.1', '::ffff:10.1.1.1', '::ffff:a01:101', 'fd12::1']) expect(locked.refusal(ip), ip).toBeUndefined();
    for (const ip of ['127.0.0.2', '::1', '192.168.1.1', '11.0.0.1', '8.8.8.8', '::ffff:192.168.0.1', 'fe80::1']) expect(locked.refusal(ip), ip).toBeDefined();
    expect(locked.refusal('192.168.1.1')).toBe('outside security.allowedNetworks');
    // Listing 169.254.0.0/16 does not open the metadata address.
    expect(locked.refusal('169.254.169.254')).toMatch(/link-local/);
  });

  it('parses CIDR networks and names bad ones', () => {
    expect(parseCidr('10.0.0.0/8')).toEqual({ address: '10.0.0.0', prefix: 8, family: 'ipv4' });
    expect(parseCidr('fd00::/8')).toEqual({ address: 'fd00::', prefix: 8, family: 'ipv6' });
    expect(parseCidr('127.0.0.1')).toEqual({ address: '127.0.0.1', prefix: 32, family: 'ipv4' });
    expect(cidrProblems(['10.0.0.0/8', '10.0.0.0/33', 'example.com/8', '10.0.0.0/x', '::/129', '300.1.1.1/8'])).toEqual([
      expect.stringContaining('"10.0.0.0/33"'),
      expect.stringContaining('"example.com/8"'),
      expect.stringContaining('"10.0.0.0/x"'),
      expect.stringContaining('"::/129"'),
      expect.stringContaining('"300.1.1.1/8"'),
    ]);
  });

  it('config: security.allowedNetworks is checked at load with a message naming it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-policy-'));
    const good = join(dir, 'good.yaml');
    writeFileSync(good, 'security:\n  allowedNetworks: ["10.0.0.0/8", "127.0.0.1/32"]\n');
    expect(loadConfig({ file: good, env: {} }).security.allowedNetworks).toEqual(['10.0.0.0/8', '127.0.0.1/32']);
    expect(loadConfig({ env: {} }).security.allowedNetworks).toBeUndefined();
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'security:\n  allowedNetworks: ["10.0.0.0/8", "10.0.0.0/40"]\n');
    expect(() => loadConfig({ file: bad, env: {} })).toThrow(ConfigError);
    expect(() => loadConfig({ file: bad, env: {} })).toThrow(/security\.allowedNetworks.*10\.0\.0\.0\/40/);
  });

  it('config: health.path must be a plain path', () => {
    for (const path of ['/x?y', '//evil', '/a/../b', '/a b', '/a\\b', '/a#b']) {
      expect(() => loadConfig({ env: { HEALTH_CHECK_PATH: path } }), path).toThrow(/health\.path/);
    }
    expect(loadConfig({ env: { HEALTH_CHECK_PATH: '/rooms/health' } }).health.path).toBe('/rooms/health');
  });
});

describe('NetworkPolicy: names and URLs at registration', () => {
  const resolve = fakeResolver({
    'metadata.test': ['169.254.169.254'],
    'mixed.test': ['10.0.0.1', '169.254.169.254'],
    'v6.test': ['fe80::1'],
    'ok.test': ['127.0.0.1'],
    'private.test': ['192.168.0.10'],
  });
  const policy = new NetworkPolicy({ resolve });

  it('refuses an IP literal URL with a 400 naming the field', async () => {
    const err = await policy.assertAllowedUrl('http://169.254.169.254/latest/meta-data', 'body.serviceUrl').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect(err).toMatchObject({ statusCode: 400, code: 'forbidden_destination', details: { field: 'body.serviceUrl', reason: expect.stringMatching(/link-local/) } });
    await expect(policy.assertAllowedUrl('http://[::ffff:169.254.169.254]:80/', 'f')).rejects.toMatchObject({ code: 'forbidden_destination' });
    await expect(policy.assertAllowedUrl('http://[fd00:ec2::254]/', 'f')).rejects.toMatchObject({ code: 'forbidden_destination' });
    // Other spellings of 169.254.169.254 are normalized by the URL parser.
    await expect(policy.assertAllowedUrl('http://2852039166/', 'f')).rejects.toMatchObject({ code: 'forbidden_destination' });
    await expect(policy.assertAllowedUrl('http://0xa9.0xfe.0xa9.0xfe/', 'f')).rejects.toMatchObject({ code: 'forbidden_destination' });
  });

  it('resolves names and refuses them when any address is refused', async () => {
    await expect(policy.assertAllowedUrl('http://metadata.test/', 'body.serviceUrl')).rejects.toMatchObject({
      statusCode: 400,
      message: expect.stringContaining('metadata.test (169.254.169.254)'),
      details: { field: 'body.serviceUrl' },
    });
    await expect(policy.assertAllowedUrl('http://mixed.test:8080/', 'f')).rejects.toMatchObject({ code: 'forbidden_destination' });
    await expect(policy.assertAllowedHost('v6.test', 'body.host')).rejects.toMatchObject({ details: { field: 'body.host' } });
    await expect(policy.assertAllowedUrl('http://ok.test:4443/', 'f')).resolves.toBeUndefined();
    await expect(policy.assertAllowedUrl('http://10.0.0.5:4443/', 'f')).resolves.toBeUndefined();
    // A name that does not resolve now is left to the connect-time guard.
    await expect(policy.assertAllowedUrl('http://nowhere.test/', 'f')).resolves.toBeUndefined();
  });

  it('keeps verdicts on names briefly (one lookup per name, not per request)', async () => {
    const r = fakeResolver({ 'hook.test': ['10.0.0.9'] });
    const p = new NetworkPolicy({ resolve: r });
    for (let i = 0; i < 5; i++) await p.assertAllowedUrl('http://hook.test/notify', 'f');
    expect(r.calls).toBe(1);
  });

  it('with allowedNetworks, resolves names against them', async () => {
    const locked = new NetworkPolicy({ resolve, allowedNetworks: ['10.0.0.0/8'] });
    await expect(locked.assertAllowedUrl('http://ok.test/', 'f')).rejects.toMatchObject({ details: { reason: 'outside security.allowedNetworks' } });
    await expect(locked.assertAllowedUrl('http://127.0.0.1:3000/', 'f')).rejects.toMatchObject({ code: 'forbidden_destination' });
    await expect(locked.assertAllowedUrl('http://10.1.1.1/', 'f')).resolves.toBeUndefined();
  });
});

describe('NetworkPolicy: at connect time', () => {
  let server: Server;
  let port: number;
  beforeAll(async () => {
    server = createServer((_req, res) => res.writeHead(200).end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const connectWith = (policy: NetworkPolicy, host: string) =>
    new Promise<string>((resolve) => {
      const s = connect({ host, port, lookup: policy.lookup });
      s.once('connect', () => (s.destroy(), resolve('connected')));
      s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    });

  it('net.connect with the guarded lookup: refused names fail, allowed ones connect', async () => {
    const policy = new NetworkPolicy({ resolve: fakeResolver({ 'evil.test': ['169.254.169.254'], 'good.test': ['127.0.0.1'], 'both.test': ['127.0.0.1', 'fe80::1'] }) });
    expect(await connectWith(policy, 'good.test')).toBe('connected');
    expect(await connectWith(policy, 'evil.test')).toBe(FORBIDDEN_DESTINATION);
    expect(await connectWith(policy, 'both.test')).toBe(FORBIDDEN_DESTINATION);
    const locked = new NetworkPolicy({ allowedNetworks: ['10.0.0.0/8'], resolve: fakeResolver({ 'good.test': ['127.0.0.1'] }) });
    expect(await connectWith(locked, 'good.test')).toBe(FORBIDDEN_DESTINATION);
  });

  it('DNS rebinding: a name allowed at registration that later resolves to a refused address fails to connect', async () => {
    let answer = ['127.0.0.1'];
    const policy = new NetworkPolicy({ resolve: fakeResolver({ 'rebind.test': () => answer }) });
    await expect(policy.assertAllowedUrl(`http://rebind.test:${port}/`, 'body.serviceUrl')).resolves.toBeUndefined();
    answer = ['169.254.169.254'];
    const pool = new Pool(`http://rebind.test:${port}`, { connect: policy.connector() });
    try {
      await expect(pool.request({ path: '/', method: 'GET' })).rejects.toMatchObject({ code: FORBIDDEN_DESTINATION });
      answer = ['127.0.0.1'];
      const res = await pool.request({ path: '/', method: 'GET' });
      expect(await res.body.text()).toBe('ok');
    } finally {
      await pool.close();
    }
  });

  it('undici connector refuses IP literals (net.connect would not look them up)', async () => {
    const policy = new NetworkPolicy();
    for (const origin of ['http://169.254.169.254', 'http://[fe80::1]:8080', 'http://[::ffff:169.254.169.254]']) {
      const pool = new Pool(origin, { connect: policy.connector() });
      const started = Date.now();
      await expect(pool.request({ path: '/', method: 'GET' })).rejects.toMatchObject({ code: FORBIDDEN_DESTINATION });
      expect(Date.now() - started).toBeLessThan(500);
      await pool.close();
    }
    const ok = new Pool(`http://127.0.0.1:${port}`, { connect: policy.connector() });
    expect((await ok.request({ path: '/', method: 'GET' })).statusCode).toBe(200);
    await ok.close();
  });

  it('probes: HTTP (guarded by default), TCP, TLS and STUN refuse refused destinations without sending', async () => {
    const policy = new NetworkPolicy({ resolve: fakeResolver({ 'evil.test': ['169.254.169.254'] }) });
    expect(await probeHttp('http://169.254.169.254/latest/meta-data', 500)).toMatchObject({ ok: false, error: expect.stringMatching(/^ERR_FORBIDDEN_DESTINATION: /) });
    expect(await probeHttp(`http://127.0.0.1:${port}/`, 500)).toMatchObject({ ok: true });
    expect(await probeHttp(`http://evil.test:${port}/`, 500, policy.agent())).toMatchObject({ ok: false, error: expect.stringMatching(/^ERR_FORBIDDEN_DESTINATION/) });
    expect(await probeTcp('169.254.169.254', 80, 500, policy)).toMatchObject({ ok: false, error: expect.stringMatching(/^ERR_FORBIDDEN_DESTINATION/) });
    expect(await probeTcp('evil.test', port, 500, policy)).toMatchObject({ ok: false, error: expect.stringMatching(/^ERR_FORBIDDEN_DESTINATION/) });
    expect(await probeTcp('127.0.0.1', port, 500, policy)).toMatchObject({ ok: true });
    expect(await probeTls('fe80::1', 443, 500, { policy })).toMatchObject({ ok: false, error: expect.stringMatching(/^ERR_FORBIDDEN_DESTINATION/) });
    const stun = new StunProber({ policy });
    try {
      expect(await stun.probe('169.254.169.254', 3478, 300)).toMatchObject({ ok: false, error: expect.stringMatching(/^ERR_FORBIDDEN_DESTINATION/) });
      expect(await stun.probe('evil.test', 3478, 300)).toMatchObject({ ok: false, error: expect.stringMatching(/^ERR_FORBIDDEN_DESTINATION/) });
      expect(await stun.probe('nowhere.test', 3478, 300)).toMatchObject({ ok: false, error: 'ENOTFOUND' });
    } finally {
      stun.close();
    }
  });
});

describe('IPv4 addresses embedded in IPv6', () => {
  const policy = new NetworkPolicy();
  it('are judged as the IPv4 address they carry', () => {
    for (const a of ['::a9fe:a9fe', '::169.254.169.254', '64:ff9b::a9fe:a9fe', '64:ff9b::169.254.169.254', '2002:a9fe:a9fe::1', '::ffff:a9fe:a9fe', '100.100.100.200']) {
      expect(policy.refusal(a), a).toBeDefined();
    }
    for (const a of ['::1', '64:ff9b::a00:1', '2002:a00:1::1', '2001:db8::1', '10.1.2.3']) expect(policy.refusal(a), a).toBeUndefined();
    expect(embeddedIpv4('64:ff9b::a9fe:a9fe')).toBe('169.254.169.254');
    expect(embeddedIpv4('2002:a9fe:a9fe::')).toBe('169.254.169.254');
    expect(embeddedIpv4('::')).toBeUndefined();
    expect(embeddedIpv4('fe80::1')).toBeUndefined();
  });
});
