import { createSocket, type Socket } from 'node:dgram';
import { createServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RTCPeerConnection, type RTCDataChannel } from 'werift';
import { OriginService, ORIGINS_POOL } from '../../src/pools/origins/service.js';
import { parseSrsRegister } from '../../src/pools/origins/srs.js';
import { streamKey } from '../../src/pools/origins/stream-key.js';
import { StreamService } from '../../src/pools/origins/streams.js';
import { parseCandidate } from '../../src/proxy/streaming/sdp.js';
import { RtcUdpProxy } from '../../src/proxy/streaming/udp.js';
import { WhipProxy } from '../../src/proxy/streaming/whip.js';
import { MemoryStore } from '../../src/store/memory.js';

/**
 * Issue 16 item 5 (WebRTC): WHIP/WHEP through Switchboard's HTTP API port and WebRTC through its
 * one UDP port, with real WebRTC stacks (werift) at both ends, all on 127.0.0.1. The origin is
 * ICE-lite like SRS, so every ICE check, DTLS and SCTP packet must cross the UDP proxy.
 */

/** Loopback only: one host candidate on 127.0.0.1, sockets bound there. */
function loopbackPc(extra: ConstructorParameters<typeof RTCPeerConnection>[0] = {}): RTCPeerConnection {
  return new RTCPeerConnection({
    iceUseIpv4: false,
    iceUseIpv6: false,
    iceAdditionalHostAddresses: ['127.0.0.1'],
    iceInterfaceAddresses: { udp4: '127.0.0.1' },
    ...extra,
  });
}

async function gathered(pc: RTCPeerConnection): Promise<void> {
  if (pc.iceGatheringState === 'complete') return;
  await new Promise<void>((resolve) => {
    const { unSubscribe } = pc.iceGatheringStateChange.subscribe((s) => {
      if (s === 'complete') {
        unSubscribe();
        resolve();
      }
    });
  });
}

async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const { port } = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** A test origin: SRS's WHIP API on node:http, answering with an ICE-lite werift peer that echoes datachannel messages. */
class TestOrigin {
  readonly pcs: RTCPeerConnection[] = [];
  readonly requests: { method: string; url: string }[] = [];
  private http!: HttpServer;
  apiPort = 0;
  rtcPort = 0;

  async start(): Promise<void> {
    this.rtcPort = await freeUdpPort();
    this.http = createServer((req, res) => {
      this.requests.push({ method: req.method ?? '', url: req.url ?? '' });
      void (async () => {
        if (req.method === 'DELETE') {
          res.writeHead(200).end();
          return;
        }
        const offer = await readBody(req);
        const pc = loopbackPc({ iceLite: true, icePortRange: [this.rtcPort, this.rtcPort + 1] });
        this.pcs.push(pc);
        pc.onDataChannel.subscribe((channel: RTCDataChannel) => {
          channel.onMessage.subscribe((m) => channel.send(`echo:${m.toString()}`));
        });
        await pc.setRemoteDescription({ type: 'offer', sdp: offer });
        await pc.setLocalDescription(await pc.createAnswer());
        await gathered(pc);
        const url = new URL(req.url ?? '/', 'http://x');
        res.writeHead(201, { 'content-type': 'application/sdp', location: `/rtc/v1/whip/?action=delete&app=${url.searchParams.get('app')}&stream=${url.searchParams.get('stream')}&token=t1` });
        res.end(pc.localDescription!.sdp);
      })().catch((err: unknown) => {
        res.writeHead(500).end(String(err));
      });
    });
    await new Promise<void>((r) => this.http.listen(0, '127.0.0.1', () => r()));
    this.apiPort = (this.http.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    await Promise.all(this.pcs.splice(0).map((pc) => pc.close()));
    this.http.closeAllConnections();
    await new Promise<void>((r) => this.http.close(() => r()));
  }
}

let store: MemoryStore;
let streams: StreamService;
let origin: TestOrigin;
let udp: RtcUdpProxy;
let whip: WhipProxy;
let originId: string;
let whipBase: string;

beforeAll(async () => {
  store = new MemoryStore();
  streams = new StreamService({ store, instanceId: 'i0' });
  origin = new TestOrigin();
  await origin.start();
  const service = new OriginService({ store, config: { aliveSeconds: 300 }, instanceId: 'i0' });
  const reg = parseSrsRegister({ ip: '127.0.0.1', server: 'srs0', service: 'svc1', pid: '1', rtmp: ['1935'], api: [String(origin.apiPort)], rtc: [`udp://0.0.0.0:${origin.rtcPort}`] });
  originId = (await service.register(reg)).server.id;
  // The UDP port first: the WHIP proxy writes it into answers.
  let resolver: (ufrag: string) => Promise<{ host: string; port: number } | undefined> = () => Promise.resolve(undefined);
  udp = new RtcUdpProxy({ host: '127.0.0.1', port: 0, resolve: (u) => resolver(u) });
  const { port: udpPort } = await udp.listen();
  whip = new WhipProxy({ streams, host: '127.0.0.1', port: 0, publicHost: '127.0.0.1', udpPort, timeoutMs: 5_000 });
  resolver = whip.resolveUfrag;
  whipBase = `http://127.0.0.1:${(await whip.listen()).port}`;
});

afterAll(async () => {
  await whip?.close();
  await udp?.close();
  await origin?.close();
  await store?.close();
});

async function post(path: string, body: string | Buffer, contentType = 'application/sdp') {
  const res = await request(`${whipBase}${path}`, { method: 'POST', headers: { 'content-type': contentType }, body });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) as { error: string; field?: string } };
}

/** A syntactically fine offer (no real peer behind it). */
const FAKE_OFFER = 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n';

describe('WHIP through Switchboard, WebRTC through its UDP port', () => {
  it('a werift client publishes: ICE, DTLS and a datachannel echo all cross the UDP proxy', async () => {
    const client = loopbackPc();
    try {
      const dc = client.createDataChannel('chat');
      await client.setLocalDescription(await client.createOffer());
      await gathered(client);
      const res = await post('/rtc/v1/whip/?app=live&stream=cam1', client.localDescription!.sdp);
      expect(res.status).toBe(201);
      expect(res.headers['content-type']).toBe('application/sdp');
      const location = res.headers.location as string;
      expect(location).toMatch(/^\/rtc\/v1\/whip\/resource\//);
      // The answer names Switchboard's UDP port only.
      const candidates = res.text.split('\r\n').filter((l) => l.startsWith('a=candidate:'));
      expect(candidates.length).toBeGreaterThan(0);
      for (const c of candidates) expect(c).toContain(` 127.0.0.1 ${udp.port} typ host`);
      expect(res.text).not.toContain(` ${origin.rtcPort} typ`);
      // The origin got the offer at the same path and query.
      expect(origin.requests[0]).toEqual({ method: 'POST', url: '/rtc/v1/whip/?app=live&stream=cam1' });

      const echoed = new Promise<string>((resolve) => dc.onMessage.subscribe((m) => resolve(m.toString())));
      const opened = new Promise<void>((resolve) => dc.stateChanged.subscribe((s) => s === 'open' && resolve()));
      await client.setRemoteDescription({ type: 'answer', sdp: res.text });
      await opened;
      dc.send('ping');
      expect(await echoed).toBe('echo:ping');

      const pair = client.iceTransports[0]!.getSelectedCandidatePair();
      const remote = parseCandidate(pair!.remote.candidate.replace(/^(a=)?candidate:/, ''));
      expect(remote).toMatchObject({ address: '127.0.0.1', port: String(udp.port) });
      expect(udp.sessionCount).toBe(1);
      const [session] = udp.listSessions();
      expect(session!.origin).toEqual({ host: '127.0.0.1', port: origin.rtcPort });
      expect(udp.stats.toOrigin).toBeGreaterThan(3);
      expect(udp.stats.toClient).toBeGreaterThan(3);
      // The session is indexed by the answer's ufrag, for every instance.
      expect(await streams.streamByUfrag(session!.ufrag)).toBe(streamKey(undefined, 'live', 'cam1'));

      // Another instance (no memory of this session) routes it by the shared index too.
      const other = new WhipProxy({ streams, publicHost: '127.0.0.1', udpPort: udp.port });
      expect(await other.resolveUfrag(session!.ufrag)).toEqual({ host: '127.0.0.1', port: origin.rtcPort });
      expect(await other.resolveUfrag('nosuchufrag')).toBeUndefined();
      // A ufrag whose stream has no origin now: no route, and no mapping made by a UDP packet.
      const orphan = streamKey(undefined, 'live', 'orphan');
      await streams.indexRtc(orphan, 'orphanufrag');
      expect(await other.resolveUfrag('orphanufrag')).toBeUndefined();
      expect(streams.mappedOrigin(orphan)).toBeUndefined();

      // DELETE on the Location reaches the origin's own resource.
      const del = await request(`${whipBase}${location}`, { method: 'DELETE' });
      await del.body.dump();
      expect(del.statusCode).toBe(200);
      expect(origin.requests.at(-1)).toEqual({ method: 'DELETE', url: '/rtc/v1/whip/?action=delete&app=live&stream=cam1&token=t1' });
    } finally {
      await client.close();
    }
  });

  it('garbage UDP neither crashes the proxy nor opens sessions', async () => {
    const before = udp.sessionCount;
    const s: Socket = createSocket('udp4');
    s.on('error', () => {});
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    const send = (b: Buffer) => new Promise<void>((r) => s.send(b, udp.port, '127.0.0.1', () => r()));
    const stun = (type: number, attrs: Buffer, lengthDelta = 0) => {
      const h = Buffer.alloc(20);
      h.writeUInt16BE(type, 0);
      h.writeUInt16BE(attrs.length + lengthDelta, 2);
      h.writeUInt32BE(0x2112a442, 4);
      h.fill(7, 8, 20);
      return Buffer.concat([h, attrs]);
    };
    const username = (u: string) => {
      const v = Buffer.from(u);
      const a = Buffer.alloc(4 + Math.ceil(v.length / 4) * 4);
      a.writeUInt16BE(0x0006, 0);
      a.writeUInt16BE(v.length, 2);
      v.copy(a, 4);
      return a;
    };
    const dropped = udp.stats.droppedUnknown + udp.stats.droppedUnresolved;
    const packets = [
      Buffer.alloc(0),
      Buffer.from('hello'),
      Buffer.alloc(200, 0xff),
      Buffer.from([0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), // a DTLS-looking record
      stun(0x0001, Buffer.alloc(0)), // binding request without USERNAME
      stun(0x0101, username('a:b')), // a success response, not a request
      stun(0x0001, username('a:b'), 4), // lying length
      stun(0x0001, username(':nofrag')),
      stun(0x0001, username('nocolon')),
      stun(0x0001, username('unknownufrag:x')), // well formed, unknown session
    ];
    for (const p of packets) await send(p);
    await expect.poll(() => udp.stats.droppedUnknown + udp.stats.droppedUnresolved - dropped).toBe(packets.length);
    expect(udp.stats.droppedUnresolved).toBeGreaterThanOrEqual(1);
    expect(udp.sessionCount).toBe(before);
    await new Promise<void>((r) => s.close(() => r()));
  });

  it('bad WHIP requests are 400 naming the field', async () => {
    const cases: [string, string | Buffer, string, string][] = [
      ['/rtc/v1/whip/?stream=s', FAKE_OFFER, 'application/sdp', 'app'],
      ['/rtc/v1/whip/?app=live', FAKE_OFFER, 'application/sdp', 'stream'],
      ['/rtc/v1/whip/?app=live&stream=a%2Fb', FAKE_OFFER, 'application/sdp', 'stream'],
      ['/rtc/v1/whip/?app=..&stream=s', FAKE_OFFER, 'application/sdp', 'app'],
      ['/rtc/v1/whip/?app=live&stream=s', FAKE_OFFER, 'application/json', 'content-type'],
      ['/rtc/v1/whip/?app=live&stream=s', '{"sdp":"v=0"}', 'application/sdp', 'body'],
      ['/rtc/v1/whip/?app=live&stream=s', FAKE_OFFER.replace(/a=ice-ufrag:.*\r\n/, ''), 'application/sdp', 'body'],
      ['/rtc/v1/whep/?app=live&stream=s', Buffer.concat([Buffer.from(FAKE_OFFER), Buffer.alloc(70 * 1024, 0x61)]), 'application/sdp', 'body'],
    ];
    for (const [path, body, type, field] of cases) {
      const res = await post(path, body, type);
      expect(res.status, `${path} ${type}`).toBe(400);
      expect(res.json()).toMatchObject({ error: 'bad_request', field });
    }
    expect((await request(`${whipBase}/nope`)).statusCode).toBe(404);
  });

  it('WHEP to a stream whose origin is unhealthy answers 503 at once', async () => {
    const key = streamKey(undefined, 'live', 'gone');
    await streams.locate(key, 'publish');
    const before = store.getServer(ORIGINS_POOL, originId)!;
    const t = Date.now();
    await store.recordHealth(ORIGINS_POOL, originId, before.epoch, { status: 'unhealthy', successes: 0, failures: 1, since: t, lastCheck: t, lastError: 'test' });
    try {
      const started = Date.now();
      const res = await post('/rtc/v1/whep/?app=live&stream=gone', FAKE_OFFER);
      expect(res.status).toBe(503);
      expect(res.json().error).toBe('origin_unavailable');
      expect(Date.now() - started).toBeLessThan(1000);
    } finally {
      const t2 = Date.now();
      await store.recordHealth(ORIGINS_POOL, originId, before.epoch, { status: 'healthy', successes: 1, failures: 0, since: t2, lastCheck: t2 });
    }
  });

  it('an unreachable origin API is 502', async () => {
    const s2 = new MemoryStore();
    const service = new OriginService({ store: s2, config: { aliveSeconds: 300 }, instanceId: 'i1' });
    const closedPort = await freeUdpPort(); // a free port number: nothing listens on it over TCP either, almost surely
    await service.register(parseSrsRegister({ ip: '127.0.0.1', server: 'dead', service: 'svc1', pid: '2', rtmp: ['1935'], api: [String(closedPort)], rtc: ['8000'] }));
    const w = new WhipProxy({ streams: new StreamService({ store: s2, instanceId: 'i1' }), host: '127.0.0.1', port: 0, publicHost: '127.0.0.1', udpPort: 18000, timeoutMs: 2_000 });
    const { port } = await w.listen();
    try {
      const res = await request(`http://127.0.0.1:${port}/rtc/v1/whip/?app=live&stream=x`, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: FAKE_OFFER });
      expect(res.statusCode).toBe(502);
      expect(((await res.body.json()) as { error: string }).error).toBe('origin_unreachable');
    } finally {
      await w.close();
      await s2.close();
    }
  });
});

describe('RtcUdpProxy sessions', () => {
  /** A STUN Binding request with USERNAME `<ufrag>:peer`. */
  function binding(ufrag: string): Buffer {
    const v = Buffer.from(`${ufrag}:peer`);
    const attr = Buffer.alloc(4 + Math.ceil(v.length / 4) * 4);
    attr.writeUInt16BE(0x0006, 0);
    attr.writeUInt16BE(v.length, 2);
    v.copy(attr, 4);
    const h = Buffer.alloc(20);
    h.writeUInt16BE(0x0001, 0);
    h.writeUInt16BE(attr.length, 2);
    h.writeUInt32BE(0x2112a442, 4);
    h.fill(1, 8, 20);
    return Buffer.concat([h, attr]);
  }

  async function udpSocket(): Promise<Socket> {
    const s = createSocket('udp4');
    s.on('error', () => {});
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    return s;
  }

  it('relays both ways per client, bounds the count, and closes idle sessions', async () => {
    const originSock = await udpSocket();
    const seenAtOrigin: { data: string; port: number }[] = [];
    originSock.on('message', (data, from) => {
      seenAtOrigin.push({ data: data.length > 20 ? 'stun' : data.toString(), port: from.port });
      originSock.send(Buffer.from(`re:${data.length > 20 ? 'stun' : data.toString()}`), from.port, from.address);
    });
    const p = new RtcUdpProxy({ host: '127.0.0.1', port: 0, idleTimeoutMs: 1_000, maxSessions: 2, resolve: async (u) => (u === 'good' ? { host: '127.0.0.1', port: originSock.address().port } : undefined) });
    const { port } = await p.listen();
    const clients = [await udpSocket(), await udpSocket(), await udpSocket()];
    const got: string[][] = clients.map(() => []);
    clients.forEach((c, i) => c.on('message', (m) => got[i]!.push(m.toString())));
    try {
      clients[0]!.send(binding('good'), port, '127.0.0.1');
      await expect.poll(() => got[0]).toEqual(['re:stun']);
      clients[0]!.send(Buffer.from('dtls'), port, '127.0.0.1');
      await expect.poll(() => got[0]).toEqual(['re:stun', 're:dtls']);
      // A non-STUN packet from an unknown client is dropped; a second client gets its own origin-side port.
      clients[1]!.send(Buffer.from('dtls'), port, '127.0.0.1');
      clients[1]!.send(binding('good'), port, '127.0.0.1');
      await expect.poll(() => got[1]).toEqual(['re:stun']);
      expect(new Set(seenAtOrigin.map((s) => s.port)).size).toBe(2);
      expect(p.sessionCount).toBe(2);
      // Full: a third client is dropped.
      clients[2]!.send(binding('good'), port, '127.0.0.1');
      await expect.poll(() => p.stats.droppedFull).toBe(1);
      expect(got[2]).toEqual([]);
      // Idle: every session closes.
      await expect.poll(() => p.sessionCount, { timeout: 5_000 }).toBe(0);
    } finally {
      await p.close();
      for (const c of [...clients, originSock]) await new Promise<void>((r) => c.close(() => r()));
    }
  });
});
