import { connect as netConnect } from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findHeadEnd, parseRequestHead } from '../../src/proxy/http1/head.js';
import { requestHost } from '../../src/proxy/router.js';
import { startSfu, type Sfu } from '../helpers/sfu.js';
import { get, startProxy, type ProxyUnderTest } from '../helpers/proxy.js';
import { OP_CLOSE, OP_TEXT, openWs, startEcho, until, wsIdentity, type EchoServer } from '../helpers/ws.js';

/**
 * WebSockets through the proxy (src/proxy/): seed 004's rule (an Upgrade goes to the `media` pool,
 * or the default pool when it has no backends), frames both ways, close propagation, the tunnel
 * timeout, least-connections counting open tunnels; and room routing (a WebSocket or request
 * naming a room reaches the server holding it, as placed through the API).
 */
async function call(api: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await request(api + path, {
    method: method as 'GET',
    ...(body !== undefined ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {}),
  });
  const text = await res.body.text();
  return { status: res.statusCode, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

describe('WebSocket by Upgrade (seed 004)', () => {
  let pu: ProxyUnderTest;
  let web: EchoServer;
  let a: EchoServer;
  let b: EchoServer;

  beforeAll(async () => {
    web = await startEcho('web');
    a = await startEcho('a');
    b = await startEcho('b');
    pu = await startProxy(
      {
        backends: [
          { host: '127.0.0.1', port: web.port, pool: 'web', id: 'web' },
          { host: '127.0.0.1', port: a.port, pool: 'media', id: 'a' },
          { host: '127.0.0.1', port: b.port, pool: 'media', id: 'b' },
        ],
        // fall 3: the 100 ms probes' timeout is short; one slow moment must not take a backend out.
        pools: { web: { healthCheck: { fall: 3 } }, media: { policy: 'least-connections', healthCheck: { fall: 3 } } },
        limits: { tunnelTimeoutMs: 600 },
      },
    );
  });

  afterAll(async () => {
    await pu?.close();
    await Promise.all([web, a, b].map((s) => s?.stop()));
  });

  it('a plain GET goes to the web pool', async () => {
    const before = web.hits;
    const r = await get(`${pu.url}/index.html`);
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ server: 'web', url: '/index.html', xfp: 'http' });
    expect(web.hits).toBe(before + 1);
    expect(a.hits + b.hits).toBe(0);
  });

  it('an Upgrade: websocket request goes to media: 101 with the right Sec-WebSocket-Accept, frames both ways', async () => {
    const { server, url, ws } = await wsIdentity(pu.port, '/chat?x=1');
    expect(['a', 'b']).toContain(server);
    expect(url).toBe('/chat?x=1');
    expect(ws.status).toBe(101);
    expect(ws.acceptOk).toBe(true);
    const echo = server === 'a' ? a : b;
    const seen = echo.received.length;
    for (const text of ['hello', 'x'.repeat(300), 'ünïcødé']) {
      ws.sendText(text);
      const f = await ws.next();
      expect(f.opcode).toBe(OP_TEXT);
      expect(f.masked).toBe(false);
      expect(f.payload.toString()).toBe(text);
    }
    // The backend got the client's masked frames unchanged (the proxy does not reframe).
    expect(echo.received.slice(seen)).toEqual([
      { text: 'hello', masked: true },
      { text: 'x'.repeat(300), masked: true },
      { text: 'ünïcødé', masked: true },
    ]);
    const closed = echo.nextClose();
    ws.sendClose();
    await closed;
    await ws.closed;
  });

  it('large volumes flow both ways without loss (backpressure on both sides)', async () => {
    const { ws } = await wsIdentity(pu.port, '/bulk');
    const chunk = 'z'.repeat(60_000);
    const n = 150; // ~9 MB each way
    for (let i = 0; i < n; i++) ws.sendText(`${i}:${chunk}`);
    for (let i = 0; i < n; i++) {
      const f = await ws.next(10_000);
      expect(f.payload.length).toBe(`${i}:`.length + chunk.length);
      expect(f.payload.subarray(0, `${i}:`.length).toString()).toBe(`${i}:`);
    }
    ws.sendClose();
    await ws.closed;
  }, 30_000);

  it('a client close frame closes the backend side; the close frame is answered', async () => {
    const { server, ws } = await wsIdentity(pu.port, '/c1');
    const echo = server === 'a' ? a : b;
    const backendClosed = echo.nextClose();
    ws.sendClose(1000);
    const f = await ws.next();
    expect(f.opcode).toBe(OP_CLOSE);
    expect(f.payload.readUInt16BE(0)).toBe(1000);
    await backendClosed;
    await ws.closed;
  });

  it('a server close frame reaches the client and closes its connection', async () => {
    const { ws } = await wsIdentity(pu.port, '/c2');
    a.closeAll();
    b.closeAll();
    const f = await ws.next();
    expect(f.opcode).toBe(OP_CLOSE);
    await ws.closed;
    expect(ws.isClosed()).toBe(true);
  });

  it('a client that vanishes (TCP closed) closes the backend side', async () => {
    const { server, ws } = await wsIdentity(pu.port, '/c3');
    const echo = server === 'a' ? a : b;
    const backendClosed = echo.nextClose();
    ws.destroy();
    await backendClosed;
    await until('no open WebSockets on the backends', () => a.open + b.open === 0);
  });

  it('an idle tunnel is closed after limits.tunnelTimeoutMs; a busy one is not', async () => {
    const busy = await wsIdentity(pu.port, '/busy');
    const idle = await wsIdentity(pu.port, '/idle');
    const t0 = Date.now();
    // The busy one sends a frame every 100 ms, well under the 600 ms timeout.
    const ping = setInterval(() => busy.ws.sendText('ping'), 100);
    try {
      await idle.ws.closed;
      const took = Date.now() - t0;
      expect(took).toBeGreaterThanOrEqual(400); // 600 ms, on a 100 ms coarse clock
      expect(took).toBeLessThan(2_500);
      await new Promise((r) => setTimeout(r, 400));
      expect(busy.ws.isClosed()).toBe(false);
    } finally {
      clearInterval(ping);
    }
    await busy.ws.closed; // idle now: closed by the timeout too
    await until('backends see both closed', () => a.open + b.open === 0);
  });

  it('open WebSockets count in least-connections: with one held open on a backend, the next goes to the other', async () => {
    for (let round = 0; round < 3; round++) {
      const first = await wsIdentity(pu.port, '/held');
      const second = await wsIdentity(pu.port, '/next');
      const third = await wsIdentity(pu.port, '/third');
      expect(second.server).not.toBe(first.server);
      // Both busy with one each: the third goes to either, and now one holds two.
      const fourth = await wsIdentity(pu.port, '/fourth');
      expect(fourth.server).not.toBe(third.server);
      for (const w of [first, second, third, fourth]) w.ws.sendClose();
      await Promise.all([first, second, third, fourth].map((w) => w.ws.closed));
      await until('closed on the backends', () => a.open + b.open === 0);
    }
  });

  it('a frame sent together with the handshake (before the 101) reaches the backend after it', async () => {
    const ws = await openWs(pu.port, '/early', { early: 'sent early' });
    expect(ws.status).toBe(101);
    const frames = [await ws.next(), await ws.next()];
    expect(JSON.parse(frames[0]!.payload.toString())).toMatchObject({ url: '/early' });
    expect(frames[1]!.payload.toString()).toBe('sent early');
    ws.sendClose();
    await ws.closed;
  });

  it('an upgrade the backend refuses: its answer is relayed, no tunnel', async () => {
    const ws = await openWs(pu.port, '/refuse');
    expect(ws.status).toBe(403);
    expect(JSON.parse(ws.body)).toMatchObject({ refused: expect.stringMatching(/^[ab]_{7}$/) as unknown });
    expect(a.open + b.open).toBe(0);
  });

  it('when the media pool has no backends, WebSockets go to the default pool', async () => {
    expect((await call(pu.api, 'DELETE', '/backends/media/a')).status).toBe(200);
    expect((await call(pu.api, 'DELETE', '/backends/media/b')).status).toBe(200);
    await until('media pool empty in the proxy', () => pu.sb.proxy!.balancers.get('media')!.upstreams.size === 0);
    const { server, ws } = await wsIdentity(pu.port, '/fallback');
    expect(server).toBe('web');
    ws.sendText('via default');
    expect((await ws.next()).payload.toString()).toBe('via default');
    ws.sendClose();
    await ws.closed;
    // Back: a backend registered at run time in media takes WebSockets again.
    expect((await call(pu.api, 'POST', '/backends', { host: '127.0.0.1', port: a.port, pool: 'media', id: 'a' })).status).toBe(200);
    await until('a healthy', () => pu.sb.http!.list('media').some(({ server: s }) => s.health.status === 'healthy'));
    await until('WebSocket back on media', async () => {
      const r = await wsIdentity(pu.port, '/back');
      r.ws.destroy();
      return r.server === 'a';
    });
  });
});

describe('WebSocket and HTTP by roomId', () => {
  let pu: ProxyUnderTest;
  let web: EchoServer;
  const sfus: Record<string, EchoServer> = {};
  let slow: Sfu;

  beforeAll(async () => {
    web = await startEcho('web');
    for (const name of ['s1', 's2']) sfus[name] = await startEcho(name);
    slow = await startSfu();
    pu = await startProxy({
      backends: [{ host: '127.0.0.1', port: web.port, pool: 'web', id: 'web' }],
      pools: { web: { healthCheck: { fall: 3 } } },
      routes: [
        { name: 'rooms-path', match: { pathPrefix: '/rooms/' }, room: { pathSegment: 2 } },
        { name: 'rooms-query', match: { pathPrefix: '/ws' }, room: { query: 'roomId' } },
        // Neither pool nor room: the default pool serves it (here only to rate-limit it).
        { name: 'limited', match: { pathPrefix: '/limited' }, rateLimit: { rate: 1000 } },
      ],
    },
    // The stand-in SFUs' probes: one slow moment must not take a server holding rooms out.
    { mutate: (c) => void (c.health.failureThreshold = 3) },
    );
    for (const name of ['s1', 's2']) {
      const s = sfus[name]!;
      expect((await call(pu.api, 'POST', '/register', { serverId: name, serviceUrl: s.url, wsUrl: s.wsUrl, workers: 1 })).status).toBe(200);
    }
  });

  afterAll(async () => {
    await pu?.close();
    await Promise.all([web, ...Object.values(sfus)].map((s) => s?.stop()));
    await slow?.stop();
  });

  it('a room placed through the API: WebSockets to /rooms/<roomId> and /ws?roomId= reach its SFU', async () => {
    const rooms = ['r-1', 'r-2', 'r-3', 'r-4', 'r-5', 'r-6'];
    const owners = new Set<string>();
    for (const roomId of rooms) {
      const placed = await call(pu.api, 'POST', `/rooms/${roomId}`, {});
      expect(placed.status).toBe(200);
      const owner = pu.sb.store.getPlacement('rooms', roomId)!.serverId;
      owners.add(owner);
      expect(placed.body.wsUrl).toBe(sfus[owner]!.wsUrl);
      for (let i = 0; i < 3; i++) {
        const r = await wsIdentity(pu.port, `/rooms/${roomId}?peerId=p${i}`);
        expect(r.server).toBe(owner);
        expect(r.ws.acceptOk).toBe(true);
        r.ws.sendText(`${roomId}-${i}`);
        expect((await r.ws.next()).payload.toString()).toBe(`${roomId}-${i}`);
        r.ws.sendClose();
        await r.ws.closed;
      }
      const q = await wsIdentity(pu.port, `/ws?peerId=x&roomId=${encodeURIComponent(roomId)}`);
      expect(q.server).toBe(owner);
      q.ws.destroy();
    }
    // Rooms are spread (most free capacity), so both SFUs were reached.
    expect(owners.size).toBe(2);
  });

  it('plain HTTP GET by roomId reaches the SFU holding the room', async () => {
    await call(pu.api, 'POST', '/rooms/http-room', {});
    const owner = pu.sb.store.getPlacement('rooms', 'http-room')!.serverId;
    for (let i = 0; i < 4; i++) {
      const r = await get(`${pu.url}/rooms/http-room/info?i=${i}`);
      expect(r.status).toBe(200);
      expect(r.json).toMatchObject({ server: owner, url: `/rooms/http-room/info?i=${i}` });
    }
  });

  it('an unknown room: 404 room_not_found (WebSocket and plain GET)', async () => {
    const ws = await openWs(pu.port, '/rooms/no-such-room');
    expect(ws.status).toBe(404);
    expect(JSON.parse(ws.body)).toMatchObject({ error: 'room_not_found' });
    const r = await get(`${pu.url}/ws?roomId=nope`);
    expect(r.status).toBe(404);
    expect(r.json).toMatchObject({ error: 'room_not_found' });
    // Anything outside the room routes goes to the default pool.
    expect((await get(`${pu.url}/other`)).json).toMatchObject({ server: 'web' });
    // A room route without its roomId: 400 naming where it was expected.
    const missing = await get(`${pu.url}/ws?peerId=1`);
    expect(missing.status).toBe(400);
    expect(missing.json?.message).toMatch(/query parameter roomId/);
  });

  it('a route naming neither a pool nor a room is served by the default pool', async () => {
    const r = await get(`${pu.url}/limited/x`);
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ server: 'web', url: '/limited/x' });
  });

  it('a room whose placement is pending: 503 with Retry-After', async () => {
    // Only a slow SFU takes new rooms: the placement stays pending while it thinks.
    slow.setRoomDelay(3_000);
    expect((await call(pu.api, 'POST', '/register', { serverId: 'slow', serviceUrl: slow.url, workers: 1 })).status).toBe(200);
    for (const name of ['s1', 's2']) expect((await call(pu.api, 'POST', `/servers/${name}/drain`)).status).toBe(200);
    const placing = call(pu.api, 'POST', '/rooms/pending-room', {});
    await until('pending placement', () => pu.sb.store.getPlacement('rooms', 'pending-room')?.state === 'pending');
    const ws = await openWs(pu.port, '/rooms/pending-room');
    expect(ws.status).toBe(503);
    expect(ws.headers['retry-after']).toBe('1');
    expect(JSON.parse(ws.body)).toMatchObject({ error: 'room_pending' });
    const r = await get(`${pu.url}/rooms/pending-room/x`);
    expect(r.status).toBe(503);
    for (const name of ['s1', 's2']) await call(pu.api, 'DELETE', `/servers/${name}/drain`);
    slow.setRoomDelay(0);
    await placing;
  }, 15_000);
});

describe('routing by host', () => {
  const head = (text: string) => {
    const buf = Buffer.from(text.replaceAll('\n', '\r\n') + '\r\n');
    return parseRequestHead(buf, 0, findHeadEnd(buf, 0, buf.length, 16384, 431));
  };
  it("an absolute-form target's authority wins over the Host header", () => {
    expect(requestHost(head('GET http://Admin.Test:81/x HTTP/1.1\nHost: public.test\n'))).toBe('admin.test');
    expect(requestHost(head('GET http://user@admin.test?x HTTP/1.1\nHost: public.test\n'))).toBe('admin.test');
    expect(requestHost(head('GET http://[::1]:8080/ HTTP/1.1\nHost: public.test\n'))).toBe('[::1]');
    expect(requestHost(head('GET /x HTTP/1.1\nHost: Public.Test:80\n'))).toBe('public.test');
  });
});

/** With the default tunnel timeout (an hour): a tunnel the backend closed must not wait for it. */
describe('a half-open client after the backend closed its tunnel', () => {
  let echo: EchoServer;
  let pu: ProxyUnderTest;
  beforeAll(async () => {
    echo = await startEcho('h');
    pu = await startProxy({ backends: [{ host: '127.0.0.1', port: echo.port, pool: 'media' }] });
  });
  afterAll(async () => {
    await pu?.close();
    await echo?.stop();
  });

  it('is let go of within seconds, not at the tunnel timeout', async () => {
    const before = pu.sb.proxy!.connections;
    // allowHalfOpen: this client never answers the proxy's FIN with its own.
    const socket = netConnect({ port: pu.port, host: '127.0.0.1', allowHalfOpen: true });
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(`GET /half HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${Buffer.alloc(16, 1).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    await new Promise<void>((resolve) => socket.once('data', () => resolve()));
    expect(pu.sb.proxy!.connections).toBe(before + 1);
    const ended = new Promise<void>((resolve) => socket.once('end', () => resolve()));
    echo.closeAll();
    await ended; // the proxy passed the backend's close on...
    // ...and lets go of the half-open client after a short grace (its socket closed on our side).
    await until('the connection is no longer counted', () => pu.sb.proxy!.connections === before, 8_000);
    socket.destroy();
  }, 15_000);
});
