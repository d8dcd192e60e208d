import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, parseWireResponse, rawClient, rawExchange, startBackend, startProxy, waitHealthy, type Backend, type ProxyUnderTest, type RawClient, type WireResponse } from '../helpers/proxy.js';

/**
 * HTTP/1.1 through the hand-written proxy (src/proxy/connection.ts and http1/): framing of
 * requests and answers (pipelining, Content-Length, chunked, HEAD/204/304), connection handling
 * (close, HTTP/1.0, backend closes), forwarding headers, limits and timeouts, refusals that never
 * reach a backend.
 */

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const json = (r: WireResponse) => JSON.parse(r.body.toString('utf8')) as { backend: string; method: string; url: string; headers: Record<string, string>; bodyBytes: number };
const GET = (path: string, extra = '') => `GET ${path} HTTP/1.1\r\nHost: test.local\r\n${extra}\r\n`;

/**
 * A backend on raw sockets that answers the first request on each connection and closes the
 * connection, without answering, on any later one (a keep-alive connection closed under the
 * proxy as it sends). `/slow` answers after 150 ms. `/health` always answers.
 */
interface Flaky {
  port: number;
  connections: number;
  answered: number;
  dropped: number;
  stop(): Promise<void>;
}

async function startFlaky(): Promise<Flaky> {
  const sockets = new Set<Socket>();
  const f: Flaky = { port: 0, connections: 0, answered: 0, dropped: 0, stop: async () => undefined };
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    let buf = '';
    let served = 0;
    let counted = false;
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end === -1) return;
        const line = buf.slice(0, buf.indexOf('\r\n'));
        buf = buf.slice(end + 4);
        const path = line.split(' ')[1] ?? '';
        const send = (body: string) => s.write(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nkeep-alive: timeout=30\r\n\r\n${body}`);
        if (path === '/health') {
          send('{"ok":true}');
          continue;
        }
        if (!counted) {
          counted = true;
          f.connections++;
        }
        if (served++ > 0) {
          f.dropped++;
          s.destroy();
          return;
        }
        f.answered++;
        const body = JSON.stringify({ backend: 'flaky', url: path });
        if (path.includes('slow')) setTimeout(() => send(body), 150);
        else send(body);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  f.port = (server.address() as AddressInfo).port;
  f.stop = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  };
  return f;
}

/**
 * A backend on raw sockets answering each request (heads only, no bodies) with the bytes its
 * script gives for the path (keep-alive: several requests per connection); `null` closes the
 * connection without answering. `/health` answers 200.
 */
interface Scripted {
  port: number;
  connections: number;
  requests: string[];
  stop(): Promise<void>;
}

type Script = string | null | { data: string; close: true } | { data: string; later: string };

async function startScripted(script: (path: string) => Script): Promise<Scripted> {
  const sockets = new Set<Socket>();
  const sc: Scripted = { port: 0, connections: 0, requests: [], stop: async () => undefined };
  const server: Server = createServer((s) => {
    sockets.add(s);
    let counted = false;
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    let buf = '';
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end === -1) return;
        const head = buf.slice(0, end + 4);
        buf = buf.slice(end + 4);
        const path = head.slice(0, head.indexOf('\r\n')).split(' ')[1] ?? '';
        if (path === '/health') {
          s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
          continue;
        }
        sc.requests.push(head);
        if (!counted) {
          counted = true;
          sc.connections++;
        }
        const out = script(path);
        if (out === null) {
          s.destroy();
          return;
        }
        if (typeof out === 'string') s.write(out);
        else if ('later' in out) {
          s.write(out.data);
          setTimeout(() => s.write(out.later), 50);
        } else {
          s.end(out.data);
          return;
        }
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  sc.port = (server.address() as AddressInfo).port;
  sc.stop = async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  };
  return sc;
}

describe('HTTP/1.1 through the proxy', () => {
  let a: Backend;
  let b: Backend;
  let dead: Backend;
  let gone: Backend;
  let flaky: Flaky;
  let pu: ProxyUnderTest;
  const clients: RawClient[] = [];
  const open = async () => {
    const c = await rawClient(pu.port);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    a = await startBackend('a');
    b = await startBackend('b');
    dead = await startBackend('dead');
    gone = await startBackend('gone');
    flaky = await startFlaky();
    pu = await startProxy({
      backends: [
        { host: '127.0.0.1', port: a.port, pool: 'web', id: 'a' },
        { host: '127.0.0.1', port: b.port, pool: 'web', id: 'b' },
        { host: '127.0.0.1', port: dead.port, pool: 'dead', id: 'dead' },
        { host: '127.0.0.1', port: flaky.port, pool: 'flaky', id: 'flaky' },
        { host: '127.0.0.1', port: gone.port, pool: 'gone', id: 'gone' },
      ],
      // Health probes time out after 50 ms here (half the 100 ms interval): `fall: 5` keeps a busy
      // event loop (5 MB bodies in this one process) from marking the web backends down.
      // `gone` is probed once (with a generous timeout, the machine may be busy), then not again.
      pools: {
        web: { healthCheck: { fall: 5 } },
        flaky: { retries: 1, outlier: { consecutiveFailures: 0 }, healthCheck: { fall: 5 } },
        empty: {},
        gone: { healthCheck: { intervalMs: 600_000, timeoutMs: 5_000 } },
      },
      routes: [
        { match: { pathPrefix: '/flaky' }, pool: 'flaky' },
        { match: { pathPrefix: '/dead' }, pool: 'dead' },
        { match: { pathPrefix: '/empty' }, pool: 'empty' },
        { match: { pathPrefix: '/gone' }, pool: 'gone' },
      ],
      limits: { maxHeaderBytes: 4096, maxBodyBytes: 6_000_000, connectTimeoutMs: 200 },
    });
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await pu?.close();
    await Promise.all([a?.stop(), b?.stop(), dead?.stop(), gone?.stop(), flaky?.stop()]);
  });

  const hits = () => a.hits + b.hits;

  it('pipelining: three requests in one write get three answers in order, the connection stays', async () => {
    const c = await open();
    const before = hits();
    await c.write(GET('/p1') + GET('/p2') + GET('/p3'));
    const [r1, r2, r3] = await c.read(['GET', 'GET', 'GET']);
    expect([r1, r2, r3].map((r) => r!.status)).toEqual([200, 200, 200]);
    expect([r1, r2, r3].map((r) => json(r!).url)).toEqual(['/p1', '/p2', '/p3']);
    for (const r of [r1, r2, r3]) expect(['a', 'b']).toContain(json(r!).backend);
    // Round-robin: both backends served.
    expect(new Set([r1, r2, r3].map((r) => json(r!).backend)).size).toBe(2);
    expect(hits()).toBe(before + 3);
    expect(c.raw().length).toBe(c.raw().indexOf(r3!.body) + r3!.body.length); // nothing more
    await sleep(50);
    expect(c.isClosed()).toBe(false);
    await c.write(GET('/p4'));
    const [r4] = await c.read(['GET']);
    expect(json(r4!).url).toBe('/p4');
  });

  it('pipelining with a body in the middle and a chunked body in the same write', async () => {
    const c = await open();
    await c.write(GET('/q1') + 'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello' + 'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n' + GET('/q4'));
    const rs = await c.read(['GET', 'POST', 'POST', 'GET']);
    expect(json(rs[0]!).url).toBe('/q1');
    expect(rs[1]!.body.toString()).toBe('hello');
    expect(rs[2]!.body.toString()).toBe('abcde');
    expect(json(rs[3]!).url).toBe('/q4');
  });

  it('ignores empty lines before a request line', async () => {
    const c = await open();
    await c.write('\r\n\r\n' + GET('/after-crlf'));
    const [r] = await c.read(['GET']);
    expect(r!.status).toBe(200);
    expect(json(r!).url).toBe('/after-crlf');
  });

  it('echoes a Content-Length body', async () => {
    const c = await open();
    await c.write('POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world');
    const [r] = await c.read(['POST']);
    expect(r!.status).toBe(200);
    expect(r!.body.toString()).toBe('hello world');
  });

  it('echoes a chunked body sent in several writes with pauses', async () => {
    const c = await open();
    const parts = ['POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n', '5\r\nhel', 'lo\r\n', '6\r', '\n world\r\n', '0\r\n', '\r\n'];
    for (const p of parts) {
      await c.write(p);
      await sleep(30);
    }
    const [r] = await c.read(['POST']);
    expect(r!.status).toBe(200);
    expect(r!.body.toString()).toBe('hello world');
    // And the connection goes on.
    await c.write(GET('/next'));
    expect(json((await c.read(['GET']))[0]!).url).toBe('/next');
  });

  it('echoes a 5 MB body intact', async () => {
    const body = Buffer.alloc(5_000_000);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7 + (i >> 10)) & 0xff;
    const res = await fetch(`${pu.url}/echo`, { method: 'POST', body });
    expect(res.status).toBe(200);
    const got = Buffer.from(await res.arrayBuffer());
    expect(got.length).toBe(body.length);
    expect(got.equals(body)).toBe(true);
  });

  it('relays a chunked answer as chunked', async () => {
    const c = await open();
    await c.write(GET('/chunked'));
    const [r] = await c.read(['GET']);
    expect(r!.status).toBe(200);
    expect(r!.headers['transfer-encoding']).toBe('chunked');
    expect(r!.body.toString()).toMatch(/^hello from [ab]$/);
    await c.write(GET('/again'));
    expect(json((await c.read(['GET']))[0]!).url).toBe('/again');
  });

  it('relays a 5 MB answer intact', async () => {
    const res = await fetch(`${pu.url}/big?bytes=5000000`);
    expect(res.status).toBe(200);
    const got = Buffer.from(await res.arrayBuffer());
    expect(got.length).toBe(5_000_000);
    expect(got.every((c) => c === 0x61)).toBe(true);
  });

  it('HEAD: headers, no body, and the next request on the connection works', async () => {
    const c = await open();
    await c.write(`HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n${GET('/after-head')}`);
    const [h, g] = await c.read(['HEAD', 'GET']);
    expect(h!.status).toBe(200);
    expect(h!.headers['content-type']).toBe('application/json');
    expect(h!.body.length).toBe(0);
    // The GET's answer starts right after the HEAD's head: no body bytes in between.
    expect(c.raw().subarray(0, 12).toString()).toBe('HTTP/1.1 200');
    expect(c.raw().indexOf('HTTP/1.1 200', 12)).toBe(Buffer.byteLength(h!.rawHead) + 2);
    expect(g!.status).toBe(200);
    expect(json(g!).url).toBe('/after-head');
    expect(json(g!).method).toBe('GET');
  });

  it('204 and 304 have no body, and the next request works', async () => {
    const c = await open();
    await c.write(GET('/status/204') + GET('/status/304') + GET('/after'));
    const rs = await c.read(['GET', 'GET', 'GET']);
    expect(rs.map((r) => r.status)).toEqual([204, 304, 200]);
    expect(rs[0]!.body.length).toBe(0);
    expect(rs[1]!.body.length).toBe(0);
    expect(json(rs[2]!).url).toBe('/after');
  });

  it('a HEAD the proxy answers itself gets no body (keep-alive stays in step)', async () => {
    const c = await open();
    await c.write(`HEAD /empty/x HTTP/1.1\r\nHost: x\r\n\r\n${GET('/after-503')}`);
    const [h, g] = await c.read(['HEAD', 'GET']);
    expect(h!.status).toBe(503);
    expect(Number(h!.headers['content-length'])).toBeGreaterThan(0);
    expect(g!.status).toBe(200);
    expect(json(g!).url).toBe('/after-503');
  });

  it('Connection: close from the client: answered with connection: close, then closed', async () => {
    const c = await open();
    await c.write(GET('/bye', 'Connection: close\r\n'));
    const [r] = await c.read(['GET']);
    expect(r!.status).toBe(200);
    expect(r!.headers.connection).toBe('close');
    // The backend was not told to close (Connection is hop-by-hop).
    expect(json(r!).headers.connection).toBeUndefined();
    await c.closed;
  });

  it('HTTP/1.0 without keep-alive: closed after the answer; with keep-alive: kept', async () => {
    const c = await open();
    await c.write('GET /ten HTTP/1.0\r\n\r\n');
    const [r] = await c.read(['GET']);
    expect(r!.status).toBe(200);
    expect(json(r!).url).toBe('/ten');
    expect(r!.headers.connection).toBe('close');
    await c.closed;

    // Kept alive while each answer has a length: a HEAD, and an answer of the proxy's own.
    const k = await open();
    await k.write('HEAD /ka1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
    const [k1] = await k.read(['HEAD']);
    expect(k1!.status).toBe(200);
    expect(k1!.headers.connection).toBe('keep-alive');
    await k.write('GET /empty/ka2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
    const [k2] = await k.read(['GET']);
    expect(k2!.status).toBe(503);
    expect(k2!.rawHead).toMatch(/^HTTP\/1\.0 503 /);
    expect(k2!.headers.connection).toBe('keep-alive');
    // Node answers a 1.0 GET without a length (until close): then the client's connection closes too.
    await k.write('GET /ka3 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
    const [k3] = await k.read(['GET']);
    expect(json(k3!).url).toBe('/ka3');
    expect(k3!.headers.connection).toBe('close');
    await k.closed;
  });

  it('a client that half-closes after its request still gets the answer, then the connection closes', async () => {
    const data = await new Promise<string>((resolve) => {
      const s = connect({ port: pu.port, host: '127.0.0.1', allowHalfOpen: true }, () => s.end(GET('/half') + GET('/half2')));
      let d = '';
      s.on('data', (x: Buffer) => (d += x.toString('latin1')));
      s.on('close', () => resolve(d));
      s.on('error', () => undefined);
    });
    const rs = [parseWireResponse(Buffer.from(data, 'latin1'), 0, false, true)!];
    rs.push(parseWireResponse(Buffer.from(data, 'latin1'), rs[0]!.end, false, true)!);
    expect(rs.map((r) => r.res.status)).toEqual([200, 200]);
    expect(rs.map((r) => json(r.res).url)).toEqual(['/half', '/half2']);
    expect(rs[1]!.res.headers.connection).toBe('close');
    expect(rs[1]!.end).toBe(data.length);
  });

  it("a backend's Connection: close does not close the client's connection", async () => {
    const c = await open();
    await c.write(GET('/close'));
    const [r1] = await c.read(['GET']);
    expect(r1!.status).toBe(200);
    expect(r1!.headers.connection).toBeUndefined();
    await c.write(GET('/close') + GET('/after-close'));
    const [r2, r3] = await c.read(['GET', 'GET']);
    expect(json(r2!).url).toBe('/close');
    expect(json(r3!).url).toBe('/after-close');
    expect(c.isClosed()).toBe(false);
  });

  it('a kept-alive backend connection closed as a GET is sent: retried on a new connection', async () => {
    // Two answers at once: two connections to the flaky backend, both kept idle after.
    const first = await Promise.all([get(`${pu.url}/flaky/slow1`), get(`${pu.url}/flaky/slow2`)]);
    expect(first.map((r) => [r.status, r.text])).toEqual([[200, expect.any(String)], [200, expect.any(String)]]);
    expect(flaky.connections).toBe(2);
    const before = { answered: flaky.answered, dropped: flaky.dropped };
    // Both idle connections will be dropped on their next request; retries: 1 in this pool, so
    // the retry must not take the other stale idle connection.
    const r = await get(`${pu.url}/flaky/x`);
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ backend: 'flaky', url: '/flaky/x' });
    expect(flaky.dropped).toBe(before.dropped + 1);
    expect(flaky.answered).toBe(before.answered + 1);
    expect(flaky.connections).toBe(3);
  });

  it('backends that closed their idle connections (restarted): the next GET succeeds', async () => {
    const c = await open();
    await c.write(GET('/warm1') + GET('/warm2'));
    await c.read(['GET', 'GET']);
    await Promise.all([a.stop(), b.stop()]);
    await Promise.all([a.start(), b.start()]);
    await waitHealthy(pu, 2);
    await c.write(GET('/after-restart'));
    const [r] = await c.read(['GET']);
    expect(r!.status).toBe(200);
    expect(json(r!).url).toBe('/after-restart');
  });

  it('hop-by-hop headers are not forwarded; forwarding headers are set', async () => {
    const c = await open();
    await c.write(
      GET(
        '/hop',
        'Connection: keep-alive, X-Secret\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Connection: keep-alive\r\nUpgrade: h2c\r\nX-Kept: yes\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\nX-Client-IP: 6.6.6.6:6\r\n',
      ),
    );
    const [r] = await c.read(['GET']);
    const h = json(r!).headers;
    for (const gone of ['connection', 'x-secret', 'keep-alive', 'te', 'proxy-connection', 'upgrade']) expect(h[gone], gone).toBeUndefined();
    expect(h['x-kept']).toBe('yes');
    expect(h.host).toBe('test.local');
    expect(h['x-forwarded-for']).toBe('10.0.0.1, 127.0.0.1');
    expect(h['x-forwarded-proto']).toBe('http');
    expect(h['x-forwarded-host']).toBe('test.local');
    expect(h['x-client-ip']).toBe(`127.0.0.1:${c.socket.localPort}`);
    // The backend's own Connection/Keep-Alive do not reach the client either.
    expect(r!.rawHead.toLowerCase()).not.toMatch(/\r\n(connection|keep-alive):/);
    expect(r!.rawHead).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
  });

  it('forwarding headers follow each request of a kept-alive connection (Host, X-Forwarded-For, HTTP/1.0)', async () => {
    const c = await open();
    const send = async (host: string, extra = '', version = '1.1') => {
      await c.write(`GET /fwd HTTP/${version}\r\nHost: ${host}\r\n${version === '1.0' ? 'Connection: keep-alive\r\n' : ''}${extra}\r\n`);
      const [r] = await c.read(['GET']);
      return json(r!).headers as Record<string, string>;
    };
    expect(await send('one.test')).toMatchObject({ 'x-forwarded-host': 'one.test', 'x-forwarded-for': '127.0.0.1' });
    expect(await send('one.test')).toMatchObject({ 'x-forwarded-host': 'one.test', 'x-forwarded-for': '127.0.0.1' });
    expect(await send('two.test')).toMatchObject({ 'x-forwarded-host': 'two.test', 'x-forwarded-for': '127.0.0.1' });
    expect(await send('two.test', 'X-Forwarded-For: 9.9.9.9\r\n')).toMatchObject({ 'x-forwarded-host': 'two.test', 'x-forwarded-for': '9.9.9.9, 127.0.0.1' });
    const again = await send('two.test');
    expect(again).toMatchObject({ 'x-forwarded-host': 'two.test', 'x-forwarded-for': '127.0.0.1', 'x-client-ip': `127.0.0.1:${c.socket.localPort}` });
    expect(again.connection).toBeUndefined();
    // HTTP/1.0 goes with connection: close (the backend may end the answer by closing: the last one here).
    expect(await send('two.test', '', '1.0')).toMatchObject({ 'x-forwarded-host': 'two.test', connection: 'close' });
  });

  it('two X-Forwarded-For lines are joined, the client address last', async () => {
    const c = await open();
    await c.write(GET('/xff', 'X-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2, 3.3.3.3\r\n'));
    const [r] = await c.read(['GET']);
    expect(json(r!).headers['x-forwarded-for']).toBe('1.1.1.1, 2.2.2.2, 3.3.3.3, 127.0.0.1');
  });

  it('a header section over maxHeaderBytes: 431 naming the problem; others are still served', async () => {
    const before = hits();
    const c = await open();
    await c.write(GET('/big-head', `X-Big: ${'x'.repeat(5000)}\r\n`));
    const [r] = await c.read(['GET']);
    expect(r!.status).toBe(431);
    expect(r!.headers['content-type']).toContain('application/json');
    expect(r!.headers.connection).toBe('close');
    expect(JSON.parse(r!.body.toString())).toEqual({ error: 'request_header_fields_too_large', message: 'header section too large' });
    await c.closed;
    expect(hits()).toBe(before);
    const ok = await get(`${pu.url}/still-ok`);
    expect(ok.status).toBe(200);
  });

  it('a header section sent slowly and growing past the limit is refused with 431 too', async () => {
    const c = await open();
    await c.write('GET / HTTP/1.1\r\nHost: x\r\n');
    for (let i = 0; i < 5; i++) {
      await c.write(`X-Pad-${i}: ${'y'.repeat(1000)}\r\n`);
      await sleep(5);
    }
    const [r] = await c.read(['GET']);
    expect(r!.status).toBe(431);
    await c.closed;
  });

  it.each([
    ['Content-Length with Transfer-Encoding', 'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n', 400, 'content-length with transfer-encoding'],
    ['two Content-Lengths', 'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd', 400, 'conflicting content-length'],
    ['an obs-fold', 'GET / HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\n\r\n', 400, 'obsolete line folding'],
    ['no Host', 'GET / HTTP/1.1\r\n\r\n', 400, 'missing host header'],
    ['HTTP/2.0', 'GET / HTTP/2.0\r\nHost: x\r\n\r\n', 505, 'HTTP version not supported'],
    ['gzip, chunked', 'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n', 501, 'unsupported transfer-encoding'],
  ])('a malformed request (%s): JSON error, connection closed, no backend reached', async (_n, text, status, message) => {
    const before = hits();
    const r = await rawExchange(pu.port, text + GET('/smuggled'), { count: 2 });
    expect(r.responses.length).toBe(1);
    expect(r.responses[0]!.status).toBe(status);
    expect(r.responses[0]!.headers.connection).toBe('close');
    expect(JSON.parse(r.responses[0]!.body.toString())).toMatchObject({ message });
    expect(r.closed).toBe(true);
    await sleep(50);
    expect(hits()).toBe(before);
    expect(a.paths.concat(b.paths)).not.toContain('/smuggled');
  });

  it('a bad chunked request body: 400, connection closed', async () => {
    const r = await rawExchange(pu.port, 'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n' + GET('/smuggled2'), { count: 2 });
    expect(r.responses.map((x) => x.status)).toEqual([400]);
    expect(r.closed).toBe(true);
    expect(a.paths.concat(b.paths)).not.toContain('/smuggled2');
  });

  it('a backend answering after connectTimeoutMs (but within serverTimeoutMs) is not cut', async () => {
    const r = await get(`${pu.url}/slow?ms=600`);
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ url: '/slow?ms=600' });
  });

  it('a backend that stopped listening, not yet seen by health checks: 503 at once, not queued', async () => {
    await gone.stop();
    const t0 = Date.now();
    const r = await get(`${pu.url}/gone/x`);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(r.status).toBe(503);
    expect(r.json?.error).toBe('bad_gateway');
    expect(String(r.json?.message)).toMatch(/^cannot connect to a backend \(connect ECONNREFUSED 127\.0\.0\.1:\d+\)$/);
    expect(gone.hits).toBe(0);
  });

  it('a backend port with nothing listening: 503 at once (cannot connect), then no_backend once health checks see it', async () => {
    await dead.stop();
    const t0 = Date.now();
    const first = await get(`${pu.url}/dead/x`);
    expect(Date.now() - t0).toBeLessThan(1000); // not held in the queue
    expect(first.status).toBe(503);
    expect(['bad_gateway', 'no_backend_available']).toContain(first.json?.error);
    const deadline = Date.now() + 5000;
    let r = first;
    while (r.json?.error !== 'no_backend_available' && Date.now() < deadline) {
      await sleep(50);
      r = await get(`${pu.url}/dead/x`);
    }
    expect(r.status).toBe(503);
    expect(r.json).toEqual({ error: 'no_backend_available', message: 'no healthy backend in pool dead' });
  });
});

describe('limits and timeouts', () => {
  let a: Backend;
  let b: Backend;
  let pu: ProxyUnderTest;
  const sockets: Socket[] = [];
  const clients: RawClient[] = [];
  const open = async () => {
    const c = await rawClient(pu.port);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    a = await startBackend('a');
    b = await startBackend('b');
    pu = await startProxy({
      backends: [
        { host: '127.0.0.1', port: a.port, pool: 'web', id: 'a' },
        { host: '127.0.0.1', port: b.port, pool: 'web', id: 'b' },
      ],
      pools: { web: { healthCheck: { fall: 5 } } },
      limits: { maxBodyBytes: 1000, headersTimeoutMs: 500, keepAliveTimeoutMs: 400, serverTimeoutMs: 300, clientTimeoutMs: 500 },
    });
  });

  afterAll(async () => {
    for (const s of sockets) s.destroy();
    for (const c of clients) c.close();
    await pu?.close();
    await Promise.all([a?.stop(), b?.stop()]);
  });

  const hits = () => a.hits + b.hits;

  it('a Content-Length over maxBodyBytes: 413 before any body byte, nothing reaches a backend', async () => {
    const before = hits();
    const c = await open();
    await c.write('POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n');
    const [r] = await c.read(['POST']);
    expect(r!.status).toBe(413);
    expect(JSON.parse(r!.body.toString())).toEqual({ error: 'payload_too_large', message: 'content-length 1001 is over the limit of 1000 bytes' });
    await c.closed;
    expect(hits()).toBe(before);
    // At the limit is fine.
    const ok = await rawExchange(pu.port, `POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n${'z'.repeat(1000)}`);
    expect(ok.responses[0]!.status).toBe(200);
    expect(ok.responses[0]!.body.toString()).toBe('z'.repeat(1000));
  });

  it('a chunked body growing over maxBodyBytes: 413 and the connection closed', async () => {
    const c = await open();
    await c.write('POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n');
    for (let i = 0; i < 5; i++) {
      if (c.isClosed()) break;
      await c.write(`190\r\n${'q'.repeat(400)}\r\n`).catch(() => undefined);
      await sleep(20);
    }
    await c.closed;
    const raw = c.raw().toString();
    expect(raw).toMatch(/^HTTP\/1\.1 413 Payload Too Large\r\n/);
    expect(raw).toContain('"error":"payload_too_large"');
    expect(raw).not.toContain('qqqq'); // the backend never answered
  });

  it('a backend silent past serverTimeoutMs: 504 JSON within ~0.5 s', async () => {
    const c = await open();
    const t0 = Date.now();
    await c.write(GET('/slow?ms=5000'));
    const [r] = await c.read(['GET']);
    const took = Date.now() - t0;
    expect(r!.status).toBe(504);
    expect(JSON.parse(r!.body.toString())).toEqual({ error: 'gateway_timeout', message: 'the backend did not answer in time' });
    // Deadlines are checked by a 100 ms tick on a clock advanced by it: ±100 ms.
    expect(took).toBeGreaterThanOrEqual(190);
    expect(took).toBeLessThan(700);
  });

  it('a client that stops sending its body: 408 after clientTimeoutMs, connection closed', async () => {
    const c = await open();
    const t0 = Date.now();
    await c.write('POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly-part');
    const [r] = await c.read(['POST'], 3000);
    const took = Date.now() - t0;
    expect(r!.status).toBe(408);
    expect(JSON.parse(r!.body.toString()).error).toBe('request_timeout');
    expect(took).toBeGreaterThanOrEqual(400);
    expect(took).toBeLessThan(1200);
    await c.closed;
  });

  it('an idle keep-alive connection is closed after keepAliveTimeoutMs', async () => {
    const c = await open();
    await c.write(GET('/once'));
    const [r] = await c.read(['GET']);
    expect(r!.status).toBe(200);
    const t0 = Date.now();
    await c.closed;
    const idle = Date.now() - t0;
    expect(idle).toBeGreaterThanOrEqual(300);
    expect(idle).toBeLessThan(1200);
    // Closed quietly: nothing after the answer.
    expect(c.raw().length).toBe(c.raw().indexOf(r!.body) + r!.body.length);
  });

  it('300 slow clients (half a head each) do not hold up others, and are closed after headersTimeoutMs', async () => {
    const n = 300;
    const results: Promise<{ closedAfter: number; data: string }>[] = [];
    const t0 = Date.now();
    await Promise.all(
      Array.from(
        { length: n },
        () =>
          new Promise<void>((resolve, reject) => {
            const s = connect({ port: pu.port, host: '127.0.0.1' });
            sockets.push(s);
            let data = '';
            s.on('data', (d: Buffer) => (data += d.toString('latin1')));
            s.on('error', () => undefined);
            results.push(new Promise((r) => s.on('close', () => r({ closedAfter: Date.now() - t0, data }))));
            s.once('connect', () => {
              s.write('GET /slowloris HTTP/1.1\r\nHost: x\r\nX-Half: ');
              resolve();
            });
            s.once('error', reject);
          }),
      ),
    );
    const t1 = Date.now();
    const r = await get(`${pu.url}/normal`);
    expect(r.status).toBe(200);
    expect(Date.now() - t1).toBeLessThan(500);
    const done = await Promise.all(results);
    for (const d of done) {
      expect(d.closedAfter).toBeGreaterThanOrEqual(400);
      expect(d.closedAfter).toBeLessThan(2000);
      expect(d.data === '' || d.data.startsWith('HTTP/1.1 408 Request Timeout\r\n')).toBe(true);
    }
    expect(done.filter((d) => d.data.includes('"error":"request_timeout"')).length).toBeGreaterThan(n * 0.9);
    expect(a.paths.concat(b.paths)).not.toContain('/slowloris');
  });
});

describe('answers from a backend, byte by byte', () => {
  let sc: Scripted;
  let pu: ProxyUnderTest;
  const clients: RawClient[] = [];
  const open = async () => {
    const c = await rawClient(pu.port);
    clients.push(c);
    return c;
  };
  const ok = 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok';

  beforeAll(async () => {
    sc = await startScripted((path) => {
      switch (path) {
        case '/early':
          return 'HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Final: yes\r\n\r\nfinal';
        case '/both':
          return 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n';
        case '/garbage':
          return 'HTPP/1.1 200 OK\r\n\r\n';
        case '/extra':
          return 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA-BYTES';
        case '/noframe':
          return { data: 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil-close', close: true };
        case '/hugehead':
          return `HTTP/1.1 200 OK\r\nX-Big: ${'x'.repeat(70_000)}\r\n\r\n`;
        case '/switch':
          return 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n';
        case '/badchunk':
          return 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\nZZ\r\n';
        case '/badchunk-later':
          return { data: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n', later: 'ZZ\r\n' };
        case '/hop':
          return 'HTTP/1.1 200 OK\r\nConnection: close, X-Internal\r\nX-Internal: secret\r\nKeep-Alive: timeout=1\r\nX-Public: yes\r\nContent-Length: 3\r\n\r\nhop';
        default:
          return ok;
      }
    });
    pu = await startProxy({
      backends: [{ host: '127.0.0.1', port: sc.port, pool: 'web', id: 'sc' }],
      pools: { web: { healthCheck: { fall: 5 }, outlier: { consecutiveFailures: 0 } } },
    });
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await pu?.close();
    await sc?.stop();
  });

  it('1xx then the answer in one read: both relayed to an HTTP/1.1 client, only the answer to HTTP/1.0', async () => {
    const c = await open();
    await c.write(GET('/early') + GET('/after'));
    const [r103, r200, next] = await c.read(['GET', 'GET', 'GET']);
    expect(r103!.status).toBe(103);
    expect(r103!.headers.link).toBe('</a.css>; rel=preload');
    expect(r200!.status).toBe(200);
    expect(r200!.headers['x-final']).toBe('yes');
    expect(r200!.body.toString()).toBe('final');
    expect(next!.body.toString()).toBe('ok');
    const d = await open();
    await d.write('GET /early HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
    const [only] = await d.read(['GET']);
    expect(only!.status).toBe(200);
    expect(only!.rawHead).toMatch(/^HTTP\/1\.1 200 OK\r\nContent-Length: 5\r\nX-Final: yes\r\nconnection: keep-alive\r\n$/);
    expect(d.raw().toString()).not.toContain('103');
  });

  it('Content-Length and chunked together: the chunked framing is followed', async () => {
    const c = await open();
    await c.write(GET('/both') + GET('/after'));
    const [r, next] = await c.read(['GET', 'GET']);
    expect(r!.body.toString()).toBe('hi');
    expect(next!.body.toString()).toBe('ok');
  });

  it('bytes past the Content-Length are not relayed, and that backend connection is not reused', async () => {
    const c = await open();
    const conns = sc.connections;
    await c.write(GET('/extra'));
    const [r] = await c.read(['GET']);
    expect(r!.body.toString()).toBe('ok');
    await c.write(GET('/after'));
    const [next] = await c.read(['GET']);
    expect(next!.body.toString()).toBe('ok');
    expect(c.raw().toString()).not.toContain('EXTRA');
    expect(sc.connections).toBeGreaterThan(conns);
  });

  it('an answer without framing is relayed until the backend closes, then the client is closed', async () => {
    const c = await open();
    await c.write(GET('/noframe'));
    await c.closed;
    const [r] = await c.read(['GET']);
    expect(r!.status).toBe(200);
    expect(r!.headers.connection).toBe('close');
    expect(r!.body.toString()).toBe('until-close');
  });

  it.each([
    ['a garbage status line', '/garbage', 'invalid response from backend: malformed status line'],
    ['a response head over 64 KB', '/hugehead', 'invalid response from backend: header section too large'],
    ['101 without an Upgrade asked for', '/switch', 'backend switched protocols without being asked'],
  ])('%s: 502 JSON', async (_n, path, message) => {
    const c = await open();
    await c.write(GET(path));
    const [r] = await c.read(['GET']);
    expect(r!.status).toBe(502);
    expect(JSON.parse(r!.body.toString())).toEqual({ error: 'bad_gateway', message });
  });

  it('a chunked answer malformed in its first read: 502 JSON (nothing was sent yet)', async () => {
    const c = await open();
    await c.write(GET('/badchunk'));
    const [r] = await c.read(['GET']);
    expect(r!.status).toBe(502);
    expect(JSON.parse(r!.body.toString())).toEqual({ error: 'bad_gateway', message: 'invalid response from backend: invalid chunk size' });
    await c.closed;
  });

  it('a chunked answer that turns malformed after its head was relayed: the client connection is cut', async () => {
    const c = await open();
    await c.write(GET('/badchunk-later'));
    await c.closed;
    const raw = c.raw().toString();
    expect(raw).toMatch(/^HTTP\/1\.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n$/);
  });

  it("the backend's hop-by-hop headers (and those its Connection names) do not reach the client", async () => {
    const c = await open();
    await c.write(GET('/hop') + GET('/after'));
    const [r, next] = await c.read(['GET', 'GET']);
    expect(r!.rawHead).toBe('HTTP/1.1 200 OK\r\nX-Public: yes\r\nContent-Length: 3\r\n');
    expect(r!.body.toString()).toBe('hop');
    expect(next!.body.toString()).toBe('ok');
  });

  it('the request head reaches the backend with its kept lines unchanged', async () => {
    const c = await open();
    const n = sc.requests.length;
    await c.write('GET /exact?q=1 HTTP/1.1\r\nHost: h.example\r\nx-MiXeD:  spaced  value \r\nConnection: x-mixed\r\nAccept: */*\r\n\r\n');
    await c.read(['GET']);
    const seen = sc.requests[n]!;
    expect(seen).toBe(
      `GET /exact?q=1 HTTP/1.1\r\nHost: h.example\r\nAccept: */*\r\nx-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: http\r\nx-forwarded-host: h.example\r\nx-client-ip: 127.0.0.1:${c.socket.localPort}\r\n\r\n`,
    );
  });
});
