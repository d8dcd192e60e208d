import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export type RoomMode = 'ok' | 'fail500' | 'hang' | 'badjson';

/**
 * A stand-in mediasoup server: a real HTTP server answering what the original media server does
 * (health, room creation), with switches to fail in the ways real servers fail.
 */
export interface Sfu {
  port: number;
  url: string;
  rooms: Map<string, { eventNotificationUri?: string; maxPeerCount?: number }>;
  /** POST /rooms calls received. */
  calls: number;
  /** GET health calls received. */
  healthChecks: number;
  setHealthy(healthy: boolean): void;
  setRoomMode(mode: RoomMode): void;
  /** Answers room creation only after this many ms (a slow media server). */
  setRoomDelay(ms: number): void;
  stop(): Promise<void>;
  /** Starts again on the same port after stop(). */
  start(): Promise<void>;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => resolve(body));
  });
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

async function listen(server: Server, port: number): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, '127.0.0.1', () => {
          server.off('error', reject);
          resolve();
        });
      });
      return (server.address() as { port: number }).port;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt > 50) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

export async function startSfu(opts: { port?: number; wsHost?: string } = {}): Promise<Sfu> {
  let healthy = true;
  let mode: RoomMode = 'ok';
  let delayMs = 0;
  const sockets = new Set<Socket>();
  const sfu = {} as Sfu;
  const handler = async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (req.method === 'GET' && (path === '/health' || path === '/rooms/health')) {
      sfu.healthChecks++;
      return json(res, healthy ? 200 : 503, { status: healthy ? 'ok' : 'unhealthy' });
    }
    const m = /^\/rooms\/([^/]+)$/.exec(path);
    if (req.method === 'POST' && m) {
      const body = await readBody(req);
      sfu.calls++;
      if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
      if (mode === 'hang') return;
      if (mode === 'fail500') return json(res, 500, { error: 'worker died' });
      if (mode === 'badjson') return res.writeHead(200, { 'content-type': 'application/json' }).end('{not json');
      const roomId = decodeURIComponent(m[1]!);
      const parsed = (body ? JSON.parse(body) : {}) as { eventNotificationUri?: string; maxPeerCount?: number };
      sfu.rooms.set(roomId, parsed);
      return json(res, 200, { protocol: '2060-mediasoup-v1', wsUrl: `ws://${opts.wsHost ?? '127.0.0.1'}:${sfu.port}`, roomId });
    }
    json(res, 404, { error: 'not found' });
  };
  let server: Server;
  const open = async (port: number) => {
    server = createServer((req, res) => void handler(req, res));
    server.keepAliveTimeout = 5000;
    server.on('connection', (s: Socket) => {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
    });
    return listen(server, port);
  };
  const port = await open(opts.port ?? 0);
  Object.assign(sfu, {
    port,
    url: `http://127.0.0.1:${port}`,
    rooms: new Map(),
    calls: 0,
    healthChecks: 0,
    setHealthy: (h: boolean) => void (healthy = h),
    setRoomMode: (m2: RoomMode) => void (mode = m2),
    setRoomDelay: (ms: number) => void (delayMs = ms),
    stop: async () => {
      if (!server.listening) return;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
    start: async () => {
      await open(port);
    },
  });
  return sfu;
}

/** An HTTP server recording the JSON bodies posted to it (webhook receiver). */
export async function startNotifySink(): Promise<{
  url: string;
  events: unknown[];
  waitFor(pred: (e: unknown) => boolean, timeoutMs: number): Promise<unknown>;
  stop(): Promise<void>;
}> {
  const events: unknown[] = [];
  const waiters: { pred: (e: unknown) => boolean; resolve: (e: unknown) => void }[] = [];
  const server = createServer((req, res) => {
    void readBody(req).then((body) => {
      let event: unknown = body;
      try {
        event = JSON.parse(body);
      } catch {
        /* keep raw */
      }
      events.push(event);
      for (const w of waiters.splice(0)) {
        if (w.pred(event)) w.resolve(event);
        else waiters.push(w);
      }
      res.writeHead(204).end();
    });
  });
  const port = await listen(server, 0);
  return {
    url: `http://127.0.0.1:${port}`,
    events,
    waitFor: (pred, timeoutMs) => {
      const found = events.find(pred);
      if (found !== undefined) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no matching notification within ${timeoutMs} ms; got ${JSON.stringify(events)}`)), timeoutMs);
        waiters.push({ pred, resolve: (e) => (clearTimeout(timer), resolve(e)) });
      });
    },
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
