import { createHash, randomBytes } from 'node:crypto';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/**
 * Helpers for HAProxy mode's integration test: a stand-in media server that answers Switchboard
 * (health, room creation) and accepts real WebSocket upgrades (RFC 6455 handshake, then one text
 * frame saying who it is), a web backend, and a minimal WebSocket client.
 */
const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
export const wsAccept = (key: string): string => createHash('sha1').update(key + WS_GUID).digest('base64');

/** One unmasked text frame (server → client). */
function textFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  const head = payload.length < 126 ? Buffer.from([0x81, payload.length]) : Buffer.from([0x81, 126, payload.length >> 8, payload.length & 0xff]);
  return Buffer.concat([head, payload]);
}

/** Reads the first complete frame's payload from a buffer, or undefined if incomplete. */
function readFrame(buf: Buffer): string | undefined {
  if (buf.length < 2) return undefined;
  let len = buf[1]! & 0x7f;
  let offset = 2;
  if (len === 126) {
    if (buf.length < 4) return undefined;
    len = buf.readUInt16BE(2);
    offset = 4;
  }
  const masked = (buf[1]! & 0x80) !== 0;
  const maskOffset = offset;
  if (masked) offset += 4;
  if (buf.length < offset + len) return undefined;
  const payload = Buffer.from(buf.subarray(offset, offset + len));
  if (masked) for (let i = 0; i < len; i++) payload[i]! ^= buf[maskOffset + (i % 4)]!;
  return payload.toString();
}

export interface Identity {
  server: string;
  url: string;
  clientIp?: string;
}

export interface WsMedia {
  name: string;
  port: number;
  url: string;
  wsUrl: string;
  /** WebSocket upgrades accepted. */
  upgrades: number;
  setHealthy(healthy: boolean): void;
  stop(): Promise<void>;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
  });
}

function closer(server: Server, sockets: Set<Socket>): () => Promise<void> {
  return async () => {
    if (!server.listening) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of sockets) s.destroy();
    await closed;
  };
}

/** A stand-in media server: `/health`, `POST /rooms/:id` (answering its wsUrl), WebSocket upgrades echoing its name. */
export async function startWsMedia(name: string): Promise<WsMedia> {
  let healthy = true;
  const sockets = new Set<Socket>();
  const media = { name, upgrades: 0 } as WsMedia;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (req.method === 'GET' && path === '/health') return json(res, healthy ? 200 : 503, { status: healthy ? 'ok' : 'unhealthy' });
    const m = /^\/rooms\/([^/]+)$/.exec(path);
    if (req.method === 'POST' && m) {
      req.resume();
      req.on('end', () => json(res, 200, { wsUrl: media.wsUrl, roomId: decodeURIComponent(m[1]!) }));
      return;
    }
    json(res, 404, { error: 'not found', server: name });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket) => {
    const key = req.headers['sec-websocket-key'];
    if (typeof key !== 'string' || (req.headers.upgrade ?? '').toLowerCase() !== 'websocket') {
      socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
      return;
    }
    media.upgrades++;
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${wsAccept(key)}\r\n\r\n`);
    const clientIp = req.headers['x-client-ip'];
    const identity: Identity = { server: name, url: req.url ?? '', ...(typeof clientIp === 'string' ? { clientIp } : {}) };
    socket.write(textFrame(JSON.stringify(identity)));
    socket.on('data', () => undefined);
    socket.on('error', () => undefined);
  });
  const port = await listen(server);
  Object.assign(media, {
    port,
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}`,
    setHealthy: (h: boolean) => void (healthy = h),
    stop: closer(server, sockets),
  });
  return media;
}

/** The web backend (nginx serving the app in the seed): answers every GET with what it saw. */
export async function startWeb(): Promise<{ port: number; stop(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => json(res, 200, { server: 'web', url: req.url, clientIp: req.headers['x-client-ip'] }));
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  const port = await listen(server);
  return { port, stop: closer(server, sockets) };
}

export type WsResult = { status: 101; acceptOk: boolean; identity: Identity } | { status: number; body: string };

/** Opens a WebSocket to `http://127.0.0.1:<port><path>`, reads the server's first frame and closes. */
export function wsConnect(port: number, path: string, timeoutMs = 5_000): Promise<WsResult> {
  return new Promise((resolve, reject) => {
    const key = randomBytes(16).toString('base64');
    const req = request({
      host: '127.0.0.1',
      port,
      path,
      headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Key': key, 'Sec-WebSocket-Version': '13' },
      agent: false,
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`WebSocket ${path}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    req.on('upgrade', (res: IncomingMessage, socket: Socket, head: Buffer) => {
      let buf = head;
      const tryRead = () => {
        const text = readFrame(buf);
        if (text === undefined) return;
        clearTimeout(timer);
        socket.destroy();
        resolve({ status: 101, acceptOk: res.headers['sec-websocket-accept'] === wsAccept(key), identity: JSON.parse(text) as Identity });
      };
      socket.on('data', (c: Buffer) => {
        buf = Buffer.concat([buf, c]);
        tryRead();
      });
      socket.on('error', () => undefined);
      tryRead();
    });
    req.on('response', (res: IncomingMessage) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end();
  });
}
