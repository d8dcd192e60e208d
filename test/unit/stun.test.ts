import { createHmac } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkFingerprint, decodeMessage, encodeBindingRequest, probeStun, StunProber, xorMappedAddress } from '../../src/probes/stun.js';
import { probeTcp, probeTls } from '../../src/probes/tcp.js';
import { freePort } from '../helpers/ports.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// RFC 5769, 2.1: sample request (USERNAME, MESSAGE-INTEGRITY, FINGERPRINT; SOFTWARE "STUN test client").
const request = hex(`
  000100582112a442b7e7a701bc34d686fa87dfae
  802200105354554e207465737420636c69656e74
  002400046e0001ff
  80290008932ff9b151263b36
  000600096576746a3a68367659202020
  000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2
  80280004e57a3bcf`);
// RFC 5769, 2.2: sample IPv4 response, XOR-MAPPED-ADDRESS 192.0.2.1:32853.
const ipv4Response = hex(`
  0101003c2112a442b7e7a701bc34d686fa87dfae
  8022000b7465737420766563746f7220
  002000080001a147e112a643
  000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7
  80280004c07d4c96`);
// RFC 5769, 2.3: sample IPv6 response, XOR-MAPPED-ADDRESS [2001:db8:1234:5678:11:2233:4455:6677]:32853.
const ipv6Response = hex(`
  010100482112a442b7e7a701bc34d686fa87dfae
  8022000b7465737420766563746f7220
  002000140002a1470113a9faa5d3f179bc25f4b5bed2b9d9
  00080014a382954e4be67bf11784c97c8292c275bfe3ed41
  80280004c8fb0b4c`);

describe('STUN codec (RFC 5769 test vectors)', () => {
  it('decodes the sample request', () => {
    const msg = decodeMessage(request)!;
    expect(msg).toMatchObject({ method: 1, class: 'request' });
    expect(msg.transactionId.toString('hex')).toBe('b7e7a701bc34d686fa87dfae');
    expect(msg.attributes.map((a) => a.type)).toEqual([0x8022, 0x0024, 0x8029, 0x0006, 0x0008, 0x8028]);
    expect(msg.attributes[0]!.value.toString()).toBe('STUN test client');
    expect(msg.attributes[3]!.value.toString()).toBe('evtj:h6vY');
    expect(checkFingerprint(request)).toBe(true);
    // Cross-check the vector itself: MESSAGE-INTEGRITY is HMAC-SHA1 under the RFC's password over
    // the message up to that attribute, with the length counting up to its end.
    const upTo = Buffer.from(request.subarray(0, request.length - 32));
    upTo.writeUInt16BE(request.length - 20 - 8, 2);
    expect(createHmac('sha1', 'VOkJxbRl1RmTxUk/WvJxBt').update(upTo).digest().equals(msg.attributes[4]!.value)).toBe(true);
  });

  it('reads the IPv4 and IPv6 XOR-MAPPED-ADDRESS of the sample responses', () => {
    const v4 = decodeMessage(ipv4Response)!;
    expect(v4.class).toBe('success');
    expect(xorMappedAddress(v4)).toEqual({ family: 'IPv4', address: '192.0.2.1', port: 32853 });
    expect(checkFingerprint(ipv4Response)).toBe(true);
    const v6 = decodeMessage(ipv6Response)!;
    expect(xorMappedAddress(v6)).toEqual({ family: 'IPv6', address: '2001:db8:1234:5678:11:2233:4455:6677', port: 32853 });
    expect(checkFingerprint(ipv6Response)).toBe(true);
  });

  it('notices a corrupted fingerprint', () => {
    const bad = Buffer.from(ipv4Response);
    bad[30] = bad[30]! ^ 1;
    expect(checkFingerprint(bad)).toBe(false);
  });

  it('encodes a Binding request that decodes back, with a valid fingerprint', () => {
    const id = Buffer.from('0102030405060708090a0b0c', 'hex');
    const buf = encodeBindingRequest(id, { software: 'switchboard', fingerprint: true });
    const msg = decodeMessage(buf)!;
    expect(msg).toMatchObject({ method: 1, class: 'request' });
    expect(msg.transactionId.equals(id)).toBe(true);
    expect(msg.attributes[0]!.value.toString()).toBe('switchboard');
    expect(checkFingerprint(buf)).toBe(true);
  });

  it('never throws on arbitrary or mutated input', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => void decodeMessage(Buffer.from(bytes))));
    fc.assert(
      fc.property(fc.constantFrom(request, ipv4Response, ipv6Response), fc.nat(), fc.integer({ min: 0, max: 255 }), (base, pos, byte) => {
        const b = Buffer.from(base);
        b[pos % b.length] = byte;
        const msg = decodeMessage(b);
        if (msg) void xorMappedAddress(msg);
        void checkFingerprint(b);
      }),
    );
  });
});

/** A STUN responder: answers Binding requests with the sender's address (or a wrong transaction id). */
function responder(mode: 'ok' | 'wrong-id' | 'silent' | 'drop-first'): Promise<{ port: number; socket: Socket; received: () => number }> {
  const socket = createSocket('udp4');
  let received = 0;
  socket.on('message', (data, rinfo) => {
    const msg = decodeMessage(data);
    received++;
    if (!msg || mode === 'silent' || (mode === 'drop-first' && received === 1)) return;
    const id = mode === 'wrong-id' ? Buffer.alloc(12, 7) : msg.transactionId;
    const xport = rinfo.port ^ 0x2112;
    const xaddr = rinfo.address.split('.').map((n, i) => Number(n) ^ [0x21, 0x12, 0xa4, 0x42][i]!);
    const attr = Buffer.from([0x00, 0x20, 0x00, 0x08, 0x00, 0x01, xport >> 8, xport & 0xff, ...xaddr]);
    const header = Buffer.alloc(20);
    header.writeUInt16BE(0x0101, 0);
    header.writeUInt16BE(attr.length, 2);
    header.writeUInt32BE(0x2112a442, 4);
    id.copy(header, 8);
    socket.send(Buffer.concat([header, attr]), rinfo.port, rinfo.address);
  });
  return new Promise((resolve) => socket.bind(0, '127.0.0.1', () => resolve({ port: socket.address().port, socket, received: () => received })));
}

describe('probes', () => {
  const sockets: Socket[] = [];
  let ok: number;
  let wrong: number;
  let silent: number;
  beforeAll(async () => {
    for (const mode of ['ok', 'wrong-id', 'silent'] as const) {
      const r = await responder(mode);
      sockets.push(r.socket);
      if (mode === 'ok') ok = r.port;
      else if (mode === 'wrong-id') wrong = r.port;
      else silent = r.port;
    }
  });
  afterAll(() => sockets.forEach((s) => s.close()));

  it('STUN: healthy when a Binding success with our transaction id comes back', async () => {
    const res = await probeStun('127.0.0.1', ok, 500);
    expect(res.ok).toBe(true);
    expect(res.mapped?.address).toBe('127.0.0.1');
  });

  it('STUN: a wrong transaction id or silence is a timeout', async () => {
    const started = Date.now();
    const [a, b] = await Promise.all([probeStun('127.0.0.1', wrong, 300), probeStun('127.0.0.1', silent, 300)]);
    expect(a).toMatchObject({ ok: false, error: 'timeout after 300 ms' });
    expect(b).toMatchObject({ ok: false, error: 'timeout after 300 ms' });
    expect(Date.now() - started).toBeLessThan(500);
  });

  it('STUN: a lost request is sent again within the timeout', async () => {
    const lossy = await responder('drop-first');
    sockets.push(lossy.socket);
    const res = await probeStun('127.0.0.1', lossy.port, 400);
    expect(res.ok).toBe(true);
    expect(lossy.received()).toBe(2);
    expect(res.latencyMs).toBeGreaterThanOrEqual(90);
  });

  it('STUN: many probes in flight on the shared socket each get their own answer', async () => {
    const targets = Array.from({ length: 300 }, (_, i) => [ok, wrong, silent][i % 3]!);
    const results = await Promise.all(targets.map((port) => probeStun('127.0.0.1', port, 400)));
    results.forEach((r, i) => expect(r.ok, `probe ${i} to port ${targets[i]}`).toBe(targets[i] === ok));
  });

  it('STUN: a closed prober fails its probes in flight at once', async () => {
    const prober = new StunProber();
    const pending = prober.probe('127.0.0.1', silent, 5000);
    prober.close();
    expect(await pending).toMatchObject({ ok: false, error: 'prober closed' });
    // ...and probes asked for after closing open no new socket.
    expect(await prober.probe('127.0.0.1', ok, 5000)).toMatchObject({ ok: false, error: 'prober closed' });
  });

  it('TCP: connect succeeds on a listener and fails on a closed port', async () => {
    const server = createServer((s) => s.destroy());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    try {
      expect((await probeTcp('127.0.0.1', (server.address() as { port: number }).port, 500)).ok).toBe(true);
    } finally {
      server.close();
    }
    expect(await probeTcp('127.0.0.1', await freePort(), 500)).toMatchObject({ ok: false, error: 'ECONNREFUSED' });
  });

  it('TLS: a handshake with a self-signed server succeeds; a plain TCP listener times out', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-tls-'));
    try {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'k'), '-out', join(dir, 'c'), '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
      const tls = createTlsServer({ key: readFileSync(join(dir, 'k')), cert: readFileSync(join(dir, 'c')) }, (s) => s.end());
      await new Promise<void>((r) => tls.listen(0, '127.0.0.1', () => r()));
      const silent = createServer(() => {});
      await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
      try {
        expect((await probeTls('127.0.0.1', (tls.address() as { port: number }).port, 1000)).ok).toBe(true);
        expect(await probeTls('127.0.0.1', (silent.address() as { port: number }).port, 300)).toMatchObject({ ok: false, error: 'timeout after 300 ms' });
        expect((await probeTls('127.0.0.1', (tls.address() as { port: number }).port, 1000, { rejectUnauthorized: true })).ok).toBe(false);
      } finally {
        tls.close();
        silent.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
