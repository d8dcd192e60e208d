import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { wsAccept } from './haproxy-mode.js';

/**
 * WebSocket stand-ins for the proxy tests: an echo server (RFC 6455 handshake, echoes every data
 * frame, answers a close frame with a close frame, says who it is in its first frame, answers
 * `GET /health`), and a raw client that sends masked frames and reads server frames.
 */
export interface Frame {
  opcode: number;
  payload: Buffer;
  masked: boolean;
}

export const OP_TEXT = 0x1;
export const OP_CLOSE = 0x8;

/** Encodes one frame; client frames are masked (RFC 6455 5.3). */
export function encodeFrame(opcode: number, payload: Buffer | string, mask: boolean): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const len = data.length;
  const head: number[] = [0x80 | opcode];
  const m = mask ? 0x80 : 0;
  if (len < 126) head.push(m | len);
  else if (len < 65536) head.push(m | 126, len >> 8, len & 0xff);
  else throw new Error('frame too big for the test helper');
  if (!mask) return Buffer.concat([Buffer.from(head), data]);
  const key = randomBytes(4);
  const masked = Buffer.from(data);
  for (let i = 0; i < len; i++) masked[i]! ^= key[i % 4]!;
  return Buffer.concat([Buffer.from(head), key, masked]);
}

/** Decodes the frames at the start of `buf`; returns them and what is left. */
export function decodeFrames(buf: Buffer): { frames: Frame[]; rest: Buffer } {
  const frames: Frame[] = [];
  let pos = 0;
  for (;;) {
    if (buf.length - pos < 2) break;
    const b0 = buf[pos]!;
    const b1 = buf[pos + 1]!;
    let len = b1 & 0x7f;
    let off = pos + 2;
    if (len === 126) {
      if (buf.length - pos < 4) break;
      len = buf.readUInt16BE(pos + 2);
      off = pos + 4;
    } else if (len === 127) {
      if (buf.length - pos < 10) break;
      len = Number(buf.readBigUInt64BE(pos + 2));
      off = pos + 10;
    }
    const masked = (b1 & 0x80) !== 0;
    const keyAt = off;
    if (masked) off += 4;
    if (buf.length < off + len) break;
    const payload = Buffer.from(buf.subarray(off, off + len));
    if (masked) for (let i = 0; i < len; i++) payload[i]! ^= buf[keyAt + (i % 4)]!;
    frames.push({ opcode: b0 & 0x0f, payload, masked });
    pos = off + len;
  }
  return { frames, rest: buf.subarray(pos) };
}

export interface EchoServer {
  name: string;
  port: number;
  url: string;
  wsUrl: string;
  /** Upgrades accepted. */
  upgrades: number;
  /** WebSockets open now. */
  open: number;
  /** Plain (non-health) HTTP requests seen. */
  hits: number;
  /** Client frames seen, in order (decoded payload as text), and whether each was masked. */
  received: { text: string; masked: boolean }[];
  /** Resolves when the next server-side WebSocket socket closes. */
  nextClose(): Promise<void>;
  /** Sends a close frame (and ends) on every open WebSocket: a server-side close. */
  closeAll(): void;
  /** Switch `/health` (200 by default). */
  setHealthy(h: boolean): void;
  stop(): Promise<void>;
}

/**
 * A WebSocket echo server that also answers `GET /health` 200 (a `media` pool backend) and
 * `POST /rooms/:id` with its wsUrl (a stand-in SFU for the rooms pool). Its first frame after the
 * handshake is `{"server": name, "url": ...,"xfp": x-forwarded-proto}`.
 */
export async function startEcho(name: string): Promise<EchoServer> {
  const sockets = new Set<Socket>();
  const wsSockets = new Set<Socket>();
  let healthy = true;
  let closeWaiters: (() => void)[] = [];
  const e = { name, upgrades: 0, open: 0, hits: 0, received: [] } as unknown as EchoServer;
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const send = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (req.method === 'GET' && path === '/health') return send(healthy ? 200 : 503, { ok: healthy });
    const m = /^\/rooms\/([^/]+)$/.exec(path);
    if (req.method === 'POST' && m) {
      req.resume();
      req.on('end', () => send(200, { wsUrl: e.wsUrl, roomId: decodeURIComponent(m[1]!) }));
      return;
    }
    e.hits++;
    req.resume();
    req.on('end', () => send(200, { server: name, url: req.url, xfp: req.headers['x-forwarded-proto'] }));
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const key = req.headers['sec-websocket-key'];
    if (typeof key !== 'string' || (req.headers.upgrade ?? '').toLowerCase() !== 'websocket') {
      socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    if ((req.url ?? '').startsWith('/refuse')) {
      socket.end(`HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: 22\r\n\r\n{"refused":"${name.padEnd(8, '_').slice(0, 8)}"}`);
      return;
    }
    e.upgrades++;
    e.open++;
    wsSockets.add(socket);
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${wsAccept(key)}\r\n\r\n`);
    socket.write(encodeFrame(OP_TEXT, JSON.stringify({ server: name, url: req.url, xfp: req.headers['x-forwarded-proto'] }), false));
    let buf: Buffer = head;
    let closing = false;
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const { frames, rest } = decodeFrames(buf);
      buf = rest;
      for (const f of frames) {
        if (f.opcode === OP_CLOSE) {
          if (!closing) socket.end(encodeFrame(OP_CLOSE, f.payload, false));
          closing = true;
          return;
        }
        e.received.push({ text: f.payload.toString(), masked: f.masked });
        socket.write(encodeFrame(f.opcode, f.payload, false));
      }
    };
    if (head.length > 0) onData(Buffer.alloc(0));
    socket.on('data', onData);
    socket.on('end', () => socket.end());
    socket.on('error', () => undefined);
    socket.once('close', () => {
      e.open--;
      wsSockets.delete(socket);
      const w = closeWaiters;
      closeWaiters = [];
      for (const f of w) f();
    });
    (socket as Socket & { closeWs?: () => void }).closeWs = () => {
      closing = true;
      socket.end(encodeFrame(OP_CLOSE, Buffer.from([0x03, 0xe8]), false));
    };
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
  });
  Object.assign(e, {
    port,
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}`,
    nextClose: () => new Promise<void>((resolve) => closeWaiters.push(resolve)),
    closeAll: () => {
      for (const s of wsSockets) (s as Socket & { closeWs?: () => void }).closeWs?.();
    },
    setHealthy: (h: boolean) => void (healthy = h),
    stop: async () => {
      if (!server.listening) return;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      for (const s of wsSockets) s.destroy();
      await closed;
    },
  });
  return e;
}

export interface WsClient {
  status: number;
  headers: Record<string, string>;
  /** The body of a non-101 answer. */
  body: string;
  acceptOk: boolean;
  /** Frames received so far not yet taken by next(). */
  next(timeoutMs?: number): Promise<Frame>;
  sendText(text: string): void;
  sendClose(code?: number): void;
  /** Resolves when the connection has closed (with whether the server ended it first). */
  closed: Promise<void>;
  isClosed(): boolean;
  destroy(): void;
}

/**
 * Opens a WebSocket with a raw socket (plain or TLS), sends the handshake and resolves once the
 * answer head arrived: 101 (frames then flow) or any other status (its body read until close or
 * content-length).
 */
export function openWs(
  port: number,
  path: string,
  opts: { tls?: { servername: string }; host?: string; headers?: Record<string, string>; timeoutMs?: number; /** A text frame sent with the handshake, before any answer. */ early?: string } = {},
): Promise<WsClient> {
  return new Promise((resolve, reject) => {
    const key = randomBytes(16).toString('base64');
    const socket: Socket = opts.tls ? tlsConnect({ port, host: '127.0.0.1', servername: opts.tls.servername, rejectUnauthorized: false }) : netConnect({ port, host: '127.0.0.1' });
    const extra = Object.entries(opts.headers ?? {})
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('');
    const req = `GET ${path} HTTP/1.1\r\nHost: ${opts.host ?? `127.0.0.1:${port}`}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`;
    socket.once(opts.tls ? 'secureConnect' : 'connect', () => socket.write(opts.early !== undefined ? Buffer.concat([Buffer.from(req), encodeFrame(OP_TEXT, opts.early, true)]) : req));
    let buf: Buffer = Buffer.alloc(0);
    let client: WsClient | undefined;
    const frames: Frame[] = [];
    let waiters: (() => void)[] = [];
    let closed = false;
    let onClosed!: () => void;
    const closedP = new Promise<void>((r) => (onClosed = r));
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`WebSocket ${path}: no answer within ${opts.timeoutMs ?? 5_000} ms`));
    }, opts.timeoutMs ?? 5_000);
    const wake = () => {
      const w = waiters;
      waiters = [];
      for (const f of w) f();
    };
    let pendingStatus: { status: number; headers: Record<string, string>; bodyStart: number; length: number } | undefined;
    const finishNon101 = () => {
      if (!pendingStatus) return;
      const p = pendingStatus;
      pendingStatus = undefined;
      clearTimeout(timer);
      socket.destroy();
      resolve(makeClient(p.status, p.headers, buf.subarray(p.bodyStart, p.length >= 0 ? p.bodyStart + p.length : undefined).toString(), false));
    };
    const makeClient = (status: number, headers: Record<string, string>, body: string, acceptOk: boolean): WsClient => ({
      status,
      headers,
      body,
      acceptOk,
      next: (timeoutMs = 3_000) =>
        new Promise<Frame>((res, rej) => {
          const t = setTimeout(() => rej(new Error(`no frame within ${timeoutMs} ms`)), timeoutMs);
          const take = () => {
            const f = frames.shift();
            if (f) {
              clearTimeout(t);
              res(f);
            } else if (closed) {
              clearTimeout(t);
              rej(new Error('closed'));
            } else waiters.push(take);
          };
          take();
        }),
      sendText: (text) => socket.write(encodeFrame(OP_TEXT, text, true)),
      sendClose: (code = 1000) => socket.write(encodeFrame(OP_CLOSE, Buffer.from([code >> 8, code & 0xff]), true)),
      closed: closedP,
      isClosed: () => closed,
      destroy: () => socket.destroy(),
    });
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (client) {
        const { frames: fs, rest } = decodeFrames(buf);
        buf = rest;
        frames.push(...fs);
        if (fs.length > 0) wake();
        return;
      }
      if (pendingStatus) {
        if (pendingStatus.length >= 0 && buf.length >= pendingStatus.bodyStart + pendingStatus.length) finishNon101();
        return;
      }
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
      const status = Number(lines[0]!.split(' ')[1]);
      const headers: Record<string, string> = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      if (status !== 101) {
        pendingStatus = { status, headers, bodyStart: end + 4, length: headers['content-length'] !== undefined ? Number(headers['content-length']) : -1 };
        if (pendingStatus.length >= 0 && buf.length >= pendingStatus.bodyStart + pendingStatus.length) finishNon101();
        return;
      }
      clearTimeout(timer);
      buf = buf.subarray(end + 4);
      client = makeClient(status, headers, '', headers['sec-websocket-accept'] === wsAccept(key));
      const { frames: fs, rest } = decodeFrames(buf);
      buf = rest;
      frames.push(...fs);
      resolve(client);
    });
    socket.on('error', () => undefined);
    socket.on('end', () => socket.end());
    socket.once('close', () => {
      closed = true;
      onClosed();
      wake();
      if (pendingStatus) finishNon101();
      else if (!client) {
        clearTimeout(timer);
        reject(new Error(`WebSocket ${path}: connection closed before an answer: ${buf.toString('latin1')}`));
      }
    });
  });
}

/** Opens a WebSocket, reads the server's identity frame; throws on a non-101. */
export async function wsIdentity(port: number, path: string, opts: Parameters<typeof openWs>[2] = {}): Promise<{ server: string; url: string; xfp?: string; ws: WsClient }> {
  const ws = await openWs(port, path, opts);
  if (ws.status !== 101) throw new Error(`WebSocket ${path}: HTTP ${ws.status} ${ws.body}`);
  const f = await ws.next();
  return { ...(JSON.parse(f.payload.toString()) as { server: string; url: string; xfp?: string }), ws };
}

export async function until<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
