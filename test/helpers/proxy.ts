import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { Value } from 'typebox/value';
import { HttpPoolSchema, type ProxyConfig } from '../../src/proxy/schema.js';
import { startSwitchboard, type Switchboard } from '../../src/switchboard.js';

/**
 * A stand-in HTTP backend: answers JSON naming itself (`backend`), the request it saw and its
 * headers. Paths: `/health` (200, or `healthStatus`), `/status/NNN`, `/slow?ms=N`, `/echo` (the
 * request body back), `/chunked` (a chunked answer), `/close` (`Connection: close`), `/big?bytes=N`.
 */
export interface Backend {
  id: string;
  port: number;
  /** Requests seen (health checks not counted). */
  hits: number;
  /** Status of `/health` (200 unless set). */
  healthStatus: number;
  /** Answer every non-health request with 500 (a broken application behind a passing health check). */
  failAll: boolean;
  /** Every non-health request's path, in order. */
  paths: string[];
  stop(): Promise<void>;
  /** Starts again on the same port after stop(). */
  start(): Promise<void>;
}

export async function startBackend(id: string, port = 0): Promise<Backend> {
  let server: HttpServer | undefined;
  const sockets = new Set<Socket>();
  const b: Backend = {
    id,
    port,
    hits: 0,
    healthStatus: 200,
    failAll: false,
    paths: [],
    stop: async () => {
      if (!server) return;
      const s = server;
      server = undefined;
      for (const sock of sockets) sock.destroy();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    },
    start: async () => {
      server = createServer((req, res) => handle(b, req, res));
      server.keepAliveTimeout = 30_000;
      server.on('connection', (s: Socket) => {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
      });
      await new Promise<void>((resolve) => server!.listen(b.port, '127.0.0.1', resolve));
      b.port = (server.address() as AddressInfo).port;
    },
  };
  await b.start();
  return b;
}

function handle(b: Backend, req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://x');
  if (url.pathname === '/health') {
    res.statusCode = b.healthStatus;
    res.end('ok');
    return;
  }
  b.hits++;
  b.paths.push(req.url ?? '');
  const chunks: Buffer[] = [];
  req.on('data', (d: Buffer) => chunks.push(d));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    const answer = () => JSON.stringify({ backend: b.id, method: req.method, url: req.url, headers: req.headers, bodyBytes: body.length });
    if (b.failAll) {
      res.statusCode = 500;
      res.setHeader('content-type', 'application/json');
      res.end(answer());
    } else if (url.pathname.startsWith('/status/')) {
      res.statusCode = Number(url.pathname.slice(8));
      res.end(res.statusCode === 204 || res.statusCode === 304 ? undefined : answer());
    } else if (url.pathname === '/slow') {
      setTimeout(() => res.end(answer()), Number(url.searchParams.get('ms') ?? '100'));
    } else if (url.pathname === '/echo') {
      res.setHeader('content-type', 'application/octet-stream');
      res.end(body);
    } else if (url.pathname === '/chunked') {
      res.write('hello ');
      setTimeout(() => res.end(`from ${b.id}`), 20);
    } else if (url.pathname === '/close') {
      res.setHeader('connection', 'close');
      res.end(answer());
    } else if (url.pathname === '/big') {
      res.end(Buffer.alloc(Number(url.searchParams.get('bytes') ?? '1000000'), 0x61));
    } else {
      res.setHeader('content-type', 'application/json');
      res.end(answer());
    }
  });
}

export interface ProxyUnderTest {
  sb: Switchboard;
  config: Config;
  /** The proxy's port (plain HTTP). */
  port: number;
  /** Base URL of the proxy. */
  url: string;
  /** Base URL of the API. */
  api: string;
  close(): Promise<void>;
}

/**
 * Switchboard in this process with the proxy on: memory store, loopback, free ports, fast health
 * checks (100 ms, rise 1, fall 1 unless the pool says otherwise). Waits until every configured
 * backend is healthy.
 */
export type ProxyOptions = Partial<Omit<ProxyConfig, 'pools' | 'limits'>> & {
  /** Pool settings; what is left out takes its default (health checks every 100 ms, timeout 90 ms, rise 1, fall 2: quick, yet one probe slowed by a busy machine takes nothing down). */
  pools?: Record<string, Record<string, unknown>>;
  limits?: Partial<ProxyConfig['limits']>;
};

export async function startProxy(proxy: ProxyOptions, opts: { env?: Record<string, string>; mutate?: (c: Config) => void } = {}): Promise<ProxyUnderTest> {
  // In this process (WORKER_COUNT=1) unless a test asks for workers: the suites inspect the proxy object.
  const config = loadConfig({ env: { APP_PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: process.env.SB_TEST_LOG_LEVEL ?? 'silent', HEALTH_CHECK_INTERVAL: '100', HEALTH_CHECK_TIMEOUT: '90', WORKER_COUNT: '1', ...opts.env }, cwd: '/nonexistent' });
  const { pools: partialPools, limits, ...rest } = proxy;
  config.proxy = { ...config.proxy, ...rest, limits: { ...config.proxy.limits, ...limits }, enabled: true, host: '127.0.0.1', port: proxy.port ?? 0 };
  const names = new Set([config.proxy.defaultPool, 'media', ...Object.keys(partialPools ?? {}), ...config.proxy.backends.map((b) => b.pool ?? config.proxy.defaultPool)]);
  const pools: ProxyConfig['pools'] = {};
  for (const name of names) {
    const given = structuredClone(partialPools?.[name] ?? {}) as Record<string, unknown>;
    const hc = (given.healthCheck ?? {}) as Record<string, unknown>;
    given.healthCheck = { rise: 1, fall: 2, path: '/health', ...hc };
    pools[name] = Value.Default(HttpPoolSchema, given) as ProxyConfig['pools'][string];
  }
  config.proxy.pools = pools;
  opts.mutate?.(config);
  const sb = await startSwitchboard(config);
  const port = Number(new URL(sb.proxyUrl!).port);
  const pu: ProxyUnderTest = { sb, config, port, url: sb.proxyUrl!, api: sb.url, close: () => sb.close() };
  await waitHealthy(pu, config.proxy.backends.length);
  return pu;
}

/** Resolves once `count` backends across the http pools are healthy. */
export async function waitHealthy(pu: ProxyUnderTest, count: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const healthy = pu.sb.http!.list().filter(({ server }) => server.health.status === 'healthy').length;
    if (healthy >= count) return;
    if (Date.now() > deadline) throw new Error(`only ${healthy} of ${count} backends healthy after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/**
 * Sends raw bytes on a new connection and reads one or more HTTP/1.1 responses (Content-Length,
 * chunked or until close), for tests that need exact bytes on the wire. Resolves with what arrived
 * when `count` responses are complete or the connection closes.
 */
export function rawExchange(port: number, data: string | Buffer, opts: { count?: number; timeoutMs?: number; head?: boolean } = {}): Promise<{ responses: RawResponse[]; closed: boolean; raw: Buffer }> {
  const count = opts.count ?? 1;
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1' });
    let raw = Buffer.alloc(0);
    let closed = false;
    const timer = setTimeout(() => finish(), opts.timeoutMs ?? 5_000);
    const finish = () => {
      clearTimeout(timer);
      s.destroy();
      try {
        resolve({ responses: parseResponses(raw, opts.head === true), closed, raw });
      } catch (err) {
        reject(err as Error);
      }
    };
    s.on('connect', () => s.write(data));
    s.on('data', (d: Buffer) => {
      raw = Buffer.concat([raw, d]);
      try {
        if (parseResponses(raw, opts.head === true, true).length >= count) finish();
      } catch {
        /* incomplete */
      }
    });
    s.on('end', () => {
      closed = true;
      finish();
    });
    s.on('error', () => {
      closed = true;
      finish();
    });
  });
}

/** Parses complete responses from raw bytes; `complete` = only those whose body is complete. */
export function parseResponses(raw: Buffer, head = false, complete = false): RawResponse[] {
  const out: RawResponse[] = [];
  let pos = 0;
  while (pos < raw.length) {
    const end = raw.indexOf('\r\n\r\n', pos);
    if (end === -1) break;
    const lines = raw.subarray(pos, end).toString('latin1').split('\r\n');
    const status = Number(lines[0]!.split(' ')[1]);
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    let p = end + 4;
    let body: Buffer;
    if (head || status === 204 || status === 304 || (status >= 100 && status < 200)) body = Buffer.alloc(0);
    else if (headers['transfer-encoding'] === 'chunked') {
      const parts: Buffer[] = [];
      for (;;) {
        const le = raw.indexOf('\r\n', p);
        if (le === -1) {
          if (complete) return out;
          break;
        }
        const size = parseInt(raw.subarray(p, le).toString('latin1'), 16);
        if (size === 0) {
          p = raw.indexOf('\r\n\r\n', le) === le ? le + 4 : raw.indexOf('\r\n\r\n', le) + 4;
          break;
        }
        if (le + 2 + size + 2 > raw.length) {
          if (complete) return out;
          break;
        }
        parts.push(raw.subarray(le + 2, le + 2 + size));
        p = le + 2 + size + 2;
      }
      body = Buffer.concat(parts);
    } else if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      if (p + n > raw.length && complete) return out;
      body = raw.subarray(p, p + n);
      p += n;
    } else {
      if (complete) return out;
      body = raw.subarray(p);
      p = raw.length;
    }
    out.push({ status, headers, body });
    pos = p;
  }
  return out;
}

/** GET through the proxy with fetch semantics; the body parsed as JSON when it is. */
export async function get(url: string, init: RequestInit = {}): Promise<{ status: number; headers: Headers; json: Record<string, unknown> | undefined; text: string }> {
  const res = await fetch(url, init);
  const text = await res.text();
  let json: Record<string, unknown> | undefined;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, json, text };
}

/** A response read off the wire, with its head exactly as it came. */
export interface WireResponse extends RawResponse {
  /** The status line and header lines, as received (CRLFs included, blank line not). */
  rawHead: string;
}

/**
 * Parses the response at raw[pos..]: undefined while incomplete. `noBody` for an answer to HEAD.
 * A response without framing is complete only once `closed`.
 */
export function parseWireResponse(raw: Buffer, pos: number, noBody: boolean, closed: boolean): { res: WireResponse; end: number } | undefined {
  const he = raw.indexOf('\r\n\r\n', pos);
  if (he === -1) return undefined;
  const rawHead = raw.subarray(pos, he + 2).toString('latin1');
  const lines = rawHead.split('\r\n').slice(0, -1);
  const m = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0]!);
  if (!m) throw new Error(`not a status line: ${JSON.stringify(lines[0])}`);
  const status = Number(m[1]);
  const headers: Record<string, string> = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    const name = l.slice(0, i).toLowerCase();
    const value = l.slice(i + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  let p = he + 4;
  if (noBody || status === 204 || status === 304 || (status >= 100 && status < 200)) return { res: { status, headers, body: Buffer.alloc(0), rawHead }, end: p };
  if (headers['transfer-encoding'] !== undefined) {
    if (headers['transfer-encoding'].toLowerCase() !== 'chunked') throw new Error(`transfer-encoding ${headers['transfer-encoding']}`);
    const parts: Buffer[] = [];
    for (;;) {
      const le = raw.indexOf('\r\n', p);
      if (le === -1) return undefined;
      const size = parseInt(raw.subarray(p, le).toString('latin1').split(';')[0]!, 16);
      if (Number.isNaN(size)) throw new Error('bad chunk size');
      if (size === 0) {
        // trailers, then the blank line
        let q = le + 2;
        for (;;) {
          const te = raw.indexOf('\r\n', q);
          if (te === -1) return undefined;
          if (te === q) return { res: { status, headers, body: Buffer.concat(parts), rawHead }, end: te + 2 };
          q = te + 2;
        }
      }
      if (le + 2 + size + 2 > raw.length) return undefined;
      parts.push(raw.subarray(le + 2, le + 2 + size));
      p = le + 2 + size + 2;
    }
  }
  if (headers['content-length'] !== undefined) {
    const n = Number(headers['content-length']);
    if (p + n > raw.length) return undefined;
    return { res: { status, headers, body: raw.subarray(p, p + n), rawHead }, end: p + n };
  }
  if (!closed) return undefined;
  return { res: { status, headers, body: raw.subarray(p), rawHead }, end: raw.length };
}

/** A client connection to talk HTTP/1.1 byte by byte: write, then read the answers in order. */
export interface RawClient {
  socket: Socket;
  /** Everything received so far. */
  raw(): Buffer;
  write(data: string | Buffer): Promise<void>;
  /**
   * The next answers, one per method given (`HEAD` answers have no body); rejects after
   * `timeoutMs` (default 5 s) or when the connection closes first.
   */
  read(methods: string[], timeoutMs?: number): Promise<WireResponse[]>;
  /** Resolves when the other side ends or resets the connection. */
  closed: Promise<void>;
  isClosed(): boolean;
  close(): void;
}

export function rawClient(port: number, host = '127.0.0.1'): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host });
    const chunks: Buffer[] = [];
    let buffered: Buffer = Buffer.alloc(0);
    let pos = 0;
    let isClosed = false;
    let wake: (() => void) | undefined;
    const all = () => {
      if (chunks.length > 0) {
        buffered = Buffer.concat([buffered, ...chunks]);
        chunks.length = 0;
      }
      return buffered;
    };
    let onClosed!: () => void;
    const closed = new Promise<void>((r) => (onClosed = r));
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      wake?.();
    });
    const end = () => {
      if (isClosed) return;
      isClosed = true;
      onClosed();
      wake?.();
    };
    socket.on('end', end);
    socket.on('close', end);
    socket.on('error', end);
    socket.once('connect', () => {
      const client: RawClient = {
        socket,
        raw: all,
        write: (data) => new Promise((r, j) => socket.write(data, (err) => (err ? j(err) : r()))),
        read: async (methods, timeoutMs = 5_000) => {
          const out: WireResponse[] = [];
          const deadline = Date.now() + timeoutMs;
          while (out.length < methods.length) {
            const parsed = parseWireResponse(all(), pos, methods[out.length] === 'HEAD', isClosed);
            if (parsed) {
              out.push(parsed.res);
              pos = parsed.end;
              continue;
            }
            if (isClosed) throw new Error(`connection closed after ${out.length} of ${methods.length} answers (${all().length - pos} bytes left: ${JSON.stringify(all().subarray(pos, pos + 200).toString('latin1'))})`);
            const left = deadline - Date.now();
            if (left <= 0) throw new Error(`timed out after ${out.length} of ${methods.length} answers`);
            await new Promise<void>((r) => {
              const t = setTimeout(r, left);
              wake = () => {
                clearTimeout(t);
                wake = undefined;
                r();
              };
            });
          }
          return out;
        },
        closed,
        isClosed: () => isClosed,
        close: () => socket.destroy(),
      };
      resolve(client);
    });
    socket.once('error', reject);
  });
}

/**
 * Backends and proxies for a test file, stopped by `cleanup()` (call it in afterEach). Probes here
 * run every 100 ms in the same event loop as the client, the proxy and the backends: on a busy
 * 2-core machine one may time out, so pools get a 99 ms timeout and go down after 3 failed probes in
 * a row (unless a test says otherwise) — a stall does not empty the pool.
 */
export function proxyFixture() {
  let backends: Backend[] = [];
  let proxies: ProxyUnderTest[] = [];
  const steadyHealth = (options: ProxyOptions): ProxyOptions => {
    const pools: Record<string, Record<string, unknown>> = { web: {}, ...options.pools };
    for (const [name, p] of Object.entries(pools)) pools[name] = { ...p, healthCheck: { fall: 3, timeoutMs: 99, ...(p.healthCheck as Record<string, unknown> | undefined) } };
    return { ...options, pools };
  };
  return {
    async cleanup(): Promise<void> {
      await Promise.all(proxies.map((p) => p.close()));
      await Promise.all(backends.map((b) => b.stop()));
      proxies = [];
      backends = [];
    },
    async backendsNamed(...ids: string[]): Promise<Backend[]> {
      const bs = await Promise.all(ids.map((id) => startBackend(id)));
      backends.push(...bs);
      return bs;
    },
    /** A proxy over `bs` (ids = backend names); `entry` adds per-backend settings (weight, maxconn). */
    async proxyFor(bs: Backend[], options: ProxyOptions = {}, extra: { entry?: (b: Backend) => Record<string, unknown>; env?: Record<string, string> } = {}): Promise<ProxyUnderTest> {
      const entry = extra.entry ?? (() => ({}));
      const pu = await startProxy({ backends: bs.map((b) => ({ host: '127.0.0.1', port: b.port, id: b.id, ...entry(b) })), ...steadyHealth(options) }, extra.env ? { env: extra.env } : {});
      proxies.push(pu);
      return pu;
    },
  };
}
