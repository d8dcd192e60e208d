import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { describeFailure, MediaClient } from '../../src/pools/rooms/media-client.js';
import { startSwitchboard, type Switchboard } from '../../src/switchboard.js';

type Json = Record<string, unknown>;
type Answer = (req: IncomingMessage, res: ServerResponse) => void;

/** A media server whose room-creation answer the test chooses; health is always 200. */
async function mediaServer(answer: Answer): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    if (req.method === 'GET') return void res.writeHead(200).end('ok');
    req.resume();
    req.on('end', () => answer(req, res));
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        for (const s of sockets) s.destroy();
      }),
  };
}

/** Writes `text` one byte every `everyMs`. */
function drip(text: string, everyMs: number): Answer {
  return (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    let i = 0;
    const timer = setInterval(() => {
      if (res.destroyed || i >= text.length) {
        clearInterval(timer);
        if (!res.destroyed) res.end();
        return;
      }
      res.write(text[i++]!);
    }, everyMs);
    res.on('close', () => clearInterval(timer));
  };
}

const bigAnswer = JSON.stringify({ protocol: 'p', wsUrl: 'ws://127.0.0.1:1', roomId: 'r', pad: 'x'.repeat(200 * 1024) });

describe('room creation answers are bounded (through the API)', () => {
  let sb: Switchboard;
  const media: { close(): Promise<void> }[] = [];
  beforeAll(async () => {
    const config = loadConfig({ env: { APP_PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', HEALTH_CHECK_INTERVAL: '600000' } });
    config.rooms.createTimeoutMs = 1000;
    sb = await startSwitchboard(config);
  });
  afterEach(async () => {
    for (const s of (await sb.app.inject({ method: 'GET', url: '/servers' })).json<{ servers: { serverId: string }[] }>().servers) {
      await sb.app.inject({ method: 'DELETE', url: `/servers/${s.serverId}` });
    }
    await Promise.all(media.splice(0).map((m) => m.close()));
  });
  afterAll(() => sb?.close());

  async function placeOn(answer: Answer, roomId: string): Promise<{ status: number; body: Json; elapsedMs: number; reserved: number }> {
    const m = await mediaServer(answer);
    media.push(m);
    const reg = await sb.app.inject({ method: 'POST', url: '/register', payload: { serverId: 'm', serviceUrl: m.url, workers: 1 } });
    expect(reg.statusCode).toBe(200);
    const started = performance.now();
    const res = await sb.app.inject({ method: 'POST', url: `/rooms/${roomId}`, payload: { maxPeerCount: 2 } });
    const elapsedMs = performance.now() - started;
    const server = (await sb.app.inject({ method: 'GET', url: '/servers/m' })).json<{ reserved: number }>();
    return { status: res.statusCode, body: res.json<Json>(), elapsedMs, reserved: server.reserved };
  }

  const attemptError = (body: Json) => ((body.attempts as { error: string }[] | undefined) ?? [])[0]?.error;

  it('a media server dripping its answer byte by byte is cut at createTimeoutMs overall; its units are released', async () => {
    const res = await placeOn(drip(JSON.stringify({ protocol: 'p', wsUrl: 'ws://127.0.0.1:1', roomId: 'drip', pad: 'y'.repeat(100) }), 200), 'drip');
    expect(res.status).toBe(502);
    expect(res.body.error).toBe('room_create_failed');
    expect(attemptError(res.body)).toBe('no answer within 1000 ms');
    expect(res.elapsedMs).toBeGreaterThanOrEqual(950);
    expect(res.elapsedMs).toBeLessThan(1500);
    expect(res.reserved).toBe(0);
    expect((await sb.app.inject({ method: 'GET', url: '/rooms/drip' })).statusCode).toBe(404);
  });

  it('an answer larger than 64 KB is refused (announced length); units released', async () => {
    const res = await placeOn((_req, res) => res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(bigAnswer) }).end(bigAnswer), 'big');
    expect(res.status).toBe(502);
    expect(attemptError(res.body)).toMatch(/answer larger than 64 KB/);
    expect(res.reserved).toBe(0);
  });

  it('an answer larger than 64 KB is refused while streaming (chunked, no length); units released', async () => {
    const res = await placeOn((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      for (let i = 0; i < bigAnswer.length; i += 8192) res.write(bigAnswer.slice(i, i + 8192));
      res.end();
    }, 'big-chunked');
    expect(res.status).toBe(502);
    expect(attemptError(res.body)).toMatch(/answer larger than 64 KB/);
    expect(res.reserved).toBe(0);
  });

  it('a lone surrogate in the answer (wsUrl) is refused as a bad answer; units released', async () => {
    const text = '{"protocol":"2060-mediasoup-v1","wsUrl":"ws://127.0.0.1:1/\\ud800","roomId":"sur"}';
    const res = await placeOn((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(text), 'sur');
    expect(res.status).toBe(502);
    expect(attemptError(res.body)).toBe('media server answered with a string that is not well-formed Unicode');
    expect(res.reserved).toBe(0);
  });

  it('a lone surrogate anywhere (nested key) is refused; a well-formed pair is accepted', async () => {
    const nested = '{"wsUrl":"ws://x","extra":{"list":[{"\\udfff":1}]}}';
    const bad = await placeOn((_req, res) => res.writeHead(200).end(nested), 'nested');
    expect(bad.status).toBe(502);
    expect(bad.reserved).toBe(0);
    await sb.app.inject({ method: 'DELETE', url: '/servers/m' });
    const pair = '{"protocol":"p","wsUrl":"ws://127.0.0.1:1/\\ud83d\\ude00","roomId":"pair"}';
    const ok = await placeOn((_req, res) => res.writeHead(200).end(pair), 'pair');
    expect(ok.status).toBe(200);
    expect(ok.body.wsUrl).toBe('ws://127.0.0.1:1/😀');
  });
});

describe('MediaClient deadline and cancellation', () => {
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await c();
  });

  it('the deadline covers waiting for a connection, not only the answer', async () => {
    const m = await mediaServer(() => {}); // never answers
    closers.push(m.close);
    const client = new MediaClient({ timeoutMs: 300, connections: 1 });
    closers.push(() => client.close());
    const first = client.createRoom(m.url, 'a', { maxPeerCount: 2 });
    const started = performance.now();
    const second = client.createRoom(m.url, 'b', { maxPeerCount: 2 }); // queued behind the first
    await expect(first).rejects.toMatchObject({ name: 'TimeoutError' });
    const err = await second.catch((e: unknown) => e);
    expect(performance.now() - started).toBeLessThan(600);
    expect(describeFailure(err, 300)).toBe('no answer within 300 ms');
  });

  it('an AbortSignal cancels a call under way, and an aborted one at once', async () => {
    const m = await mediaServer(() => {});
    closers.push(m.close);
    const client = new MediaClient({ timeoutMs: 5000 });
    closers.push(() => client.close());
    const ac = new AbortController();
    const started = performance.now();
    const call = client.createRoom(m.url, 'a', { maxPeerCount: 2 }, ac.signal);
    setTimeout(() => ac.abort(), 50);
    const err = await call.catch((e: unknown) => e);
    expect(performance.now() - started).toBeLessThan(1000);
    expect((err as Error).name).toBe('AbortError');
    expect(describeFailure(err, 5000)).toBe('cancelled');
    await expect(client.createRoom(m.url, 'b', { maxPeerCount: 2 }, AbortSignal.abort())).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('a deeply nested answer with a lone surrogate is refused, not a stack overflow', async () => {
    const depth = 30_000;
    const text = `{"a":${'['.repeat(depth)}"\\udc00"${']'.repeat(depth)}}`;
    const m = await mediaServer((_req, res) => res.writeHead(200).end(text));
    closers.push(m.close);
    const client = new MediaClient({ timeoutMs: 2000 });
    closers.push(() => client.close());
    await expect(client.createRoom(m.url, 'deep', { maxPeerCount: 2 })).rejects.toMatchObject({ code: 'SB_MEDIA_NOT_WELL_FORMED' });
  });

  it('refuses a media server on a link-local address without connecting (connect-time guard)', async () => {
    const client = new MediaClient({ timeoutMs: 2000 });
    closers.push(() => client.close());
    const err = await client.createRoom('http://169.254.169.254', 'a', { maxPeerCount: 2 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_FORBIDDEN_DESTINATION' });
    expect(describeFailure(err, 2000)).toMatch(/^ERR_FORBIDDEN_DESTINATION: /);
  });
});
