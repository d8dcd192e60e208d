import { Buffer } from 'node:buffer';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { BucketSpec } from '../core/token-bucket.js';
import { cookieValueFor, readStickyCookie, serverIdFromCookie, stickySetCookie, stripStickyCookie } from '../core/policies/sticky-cookie.js';
import type { PoolBalancer, Waiter } from './balancer.js';
import { ChunkedBody, LengthBody, UntilCloseBody, type BodyTracker } from './http1/body.js';
import { fieldValue, findHeadEnd, H, HeadError, headerValue, isHopByHop, isIdempotent, parseRequestHead, parseResponseHead, responseHasBody, rewriteHead, type RequestHead, type ResponseHead } from './http1/head.js';
import type { RateDecision, RateLimiter } from './rate-limit/index.js';
import { codeForHeadError, errorResponse, ProxyError } from './respond.js';
import { queryParam, requestPath, Router, type Route } from './router.js';
import type { ProxyConfig } from './schema.js';
import type { Upstream, UpstreamConn, UpstreamHandler } from './upstream.js';

/** Where a room's requests go: its server's upstream (inflight counted), or why not. */
export type RoomTarget = { upstream: Upstream } | { status: 404 | 503; error: string; message: string };

export interface RoomTargets {
  resolve(roomId: string): RoomTarget | Promise<RoomTarget>;
  release(upstream: Upstream): void;
}

/** What one exchange reports for metrics and access logs (one object per connection, reused:
 * `record` must not keep it). */
export interface ExchangeRecord {
  pool: string;
  route: string;
  upstream: Upstream | undefined;
  method: string;
  target: string;
  status: number;
  /** Seconds from the complete request head to the end of the response. */
  seconds: number;
  client: string;
  /** Set when the proxy answered itself (no backend answer). */
  error?: string | undefined;
}

/** What every client connection of one listener shares. */
export interface ProxyContext {
  readonly limits: ProxyConfig['limits'];
  readonly router: Router;
  /** Coarse clock (ms since epoch), advanced by the proxy's tick; deadlines are measured on it. */
  now: number;
  readonly rooms: RoomTargets;
  readonly limiter: RateLimiter | undefined;
  readonly perIp: BucketSpec | undefined;
  draining: boolean;
  readonly conns: Set<ClientConn>;
  record(r: ExchangeRecord): void;
  retried(pool: string): void;
}

const enum St {
  /** Reading a request head (or idle between requests). */
  Head,
  /** One exchange under way: routing, queued, connecting, relaying. */
  Busy,
  /** A WebSocket (or other upgraded protocol): bytes both ways. */
  Tunnel,
  Closed,
}

/** Client bytes buffered while no backend takes them yet; past this the client is paused. */
const MAX_BUFFERED = 64 * 1024;
const EMPTY = new Set<string>();

/**
 * One client connection: reads request heads, sends each request to a backend (one at a time:
 * pipelined requests wait, unread, until the answer before them is complete), relays the answer
 * and keeps the connection for the next request. Upgrades become tunnels.
 */
export class ClientConn implements UpstreamHandler, Waiter {
  private st = St.Head;
  private buf: Buffer | undefined;
  /** When the current wait ends (coarse ms); 0 = none. */
  deadline: number;
  queuedUntil = 0;
  private queuedOn: PoolBalancer | undefined;
  private head: RequestHead | undefined;
  private route: Route | undefined;
  private reqBody: BodyTracker | undefined;
  /** Content-Length bodies, the common case: one tracker each way per connection, reset per message. */
  private readonly reqLength = new LengthBody(0);
  private readonly resLength = new LengthBody(0);
  private reqBodyBytes = 0;
  private upstream: Upstream | undefined;
  private conn: UpstreamConn | undefined;
  private outHead: Buffer | undefined;
  private resBuf: Buffer | undefined;
  private res: ResponseHead | undefined;
  private resBody: BodyTracker | undefined;
  private resStarted = false;
  private closeAfter = false;
  private attempts = 0;
  private tried: Set<string> | undefined;
  private insertCookie: string | undefined;
  private started = 0;
  private pausedByUs = false;
  readonly ip: string;
  readonly port: number;

  constructor(
    private readonly socket: Socket,
    private readonly ctx: ProxyContext,
    private readonly proto: 'http' | 'https',
  ) {
    this.ip = normalizeIp(socket.remoteAddress ?? '');
    this.port = socket.remotePort ?? 0;
    this.deadline = ctx.now + ctx.limits.headersTimeoutMs;
    socket.setNoDelay(true);
    // A client that half-closes after its request still reads the answer: without this, Node
    // ends our side at the client's FIN and the answer is lost (write after end).
    socket.allowHalfOpen = true;
    socket.on('data', (d: Buffer) => this.onClientData(d));
    socket.on('end', () => this.onClientEnd());
    socket.on('error', () => this.close());
    socket.on('close', () => this.close());
    socket.on('drain', () => {
      if (this.st === St.Closed) return;
      // The client reads again: relaying goes on, and its silence until now was not the backend's.
      if (this.st === St.Busy && this.resStarted) this.deadline = this.ctx.now + this.ctx.limits.serverTimeoutMs;
      this.conn?.resume();
    });
    ctx.conns.add(this);
  }

  // ---- client side -------------------------------------------------------------------------

  private onClientData(d: Buffer): void {
    switch (this.st) {
      case St.Tunnel:
        this.deadline = this.ctx.now + this.ctx.limits.tunnelTimeoutMs;
        if (!this.conn!.write(d)) this.pauseClientUntilBackendDrains();
        return;
      case St.Head:
        this.buf = this.buf ? Buffer.concat([this.buf, d]) : d;
        this.parseHead();
        return;
      case St.Busy:
        this.buf = this.buf ? Buffer.concat([this.buf, d]) : d;
        if (this.conn && this.reqBody && !this.reqBody.done) this.pumpBody();
        else if (this.buf.length > MAX_BUFFERED || !this.reqBody || this.reqBody.done) this.pauseClient();
        return;
      case St.Closed:
        return;
    }
  }

  private onClientEnd(): void {
    // A half-closed client may still read the answer it asked for; an idle one is done.
    switch (this.st) {
      case St.Head:
        this.st = St.Closed;
        this.ctx.conns.delete(this);
        this.socket.end();
        return;
      case St.Busy:
        // A body that can no longer arrive: nothing to wait for.
        if (this.reqBody && !this.reqBody.done) return void this.abort();
        // Requests already received (pipelined) are answered, then the connection closes.
        this.clientEnded = true;
        if (!this.buf) this.closeAfter = true;
        return;
      case St.Tunnel:
        this.conn?.socket.end();
        return;
    }
  }

  private pauseClient(): void {
    if (!this.pausedByUs) {
      this.pausedByUs = true;
      this.socket.pause();
    }
  }

  private resumeClient(): void {
    if (this.pausedByUs) {
      this.pausedByUs = false;
      this.socket.resume();
    }
  }

  private pauseClientUntilBackendDrains(): void {
    this.pauseClient();
    const sock = this.conn?.socket;
    // One listener per backend socket (a write refused again before the drain adds none).
    if (!sock || this.drainSock === sock) return;
    this.drainSock = sock;
    sock.once('drain', () => {
      if (this.drainSock !== sock) return;
      this.drainSock = undefined;
      if (this.conn?.socket === sock) this.resumeClient();
    });
  }

  private parseHead(): void {
    let buf = this.buf;
    if (!buf) return;
    if (buf[0] === 0x0d) {
      // RFC 9112 §2.2: empty lines before a request line are ignored (some clients send a CRLF
      // after a POST body).
      let i = 0;
      while (i + 1 < buf.length && buf[i] === 0x0d && buf[i + 1] === 0x0a) i += 2;
      if (i === buf.length) {
        this.buf = undefined;
        return;
      }
      if (i > 0) this.buf = buf = buf.subarray(i);
    }
    const limits = this.ctx.limits;
    let head: RequestHead;
    try {
      const end = findHeadEnd(buf, 0, buf.length, limits.maxHeaderBytes, 431);
      if (end === -1) {
        if (this.clientEnded) return this.close(); // the rest of this head will never come
        // The first byte of a request starts its headers timeout (HAProxy `timeout http-request`).
        if (this.deadline === 0 || this.awaitingFirstByte) this.deadline = this.ctx.now + limits.headersTimeoutMs;
        this.awaitingFirstByte = false;
        return;
      }
      head = parseRequestHead(buf, 0, end);
      this.buf = end < buf.length ? buf.subarray(end) : undefined;
    } catch (err) {
      const e = err as HeadError;
      const status = e instanceof HeadError ? e.status : 400;
      this.answerAndClose(status, codeForHeadError(status), e.message);
      return;
    }
    this.awaitingFirstByte = false;
    this.st = St.Busy;
    this.head = head;
    this.started = performance.now();
    this.closeAfter = head.close || (this.clientEnded && !this.buf);
    if (this.ctx.draining) return this.answer(503, ProxyError.shuttingDown, 'the proxy is shutting down', true);
    if (head.chunked) this.reqBody = new ChunkedBody(400);
    else if (head.contentLength > 0) {
      if (limits.maxBodyBytes > 0 && head.contentLength > limits.maxBodyBytes) {
        return this.answer(413, ProxyError.bodyTooLarge, `content-length ${head.contentLength} is over the limit of ${limits.maxBodyBytes} bytes`, true);
      }
      this.reqBody = this.reqLength.reset(head.contentLength);
    }
    if (this.buf && (!this.reqBody || this.reqBody.done)) this.pauseClient(); // pipelined: later
    this.route = this.ctx.router.route(head);
    this.checkRate();
  }

  /** Set between requests on a kept-alive connection: the next byte starts the headers timeout. */
  private awaitingFirstByte = false;
  /** The backend socket a 'drain' listener waits on (the client is paused until it fires). */
  private drainSock: Socket | undefined;
  /** The next backend connection must be a new one (a kept-alive one just failed). */
  private freshConn = false;
  /** The client half-closed: what it sent is answered, nothing more can come. */
  private clientEnded = false;
  /** Why the last attempt failed, for a retry that finds no backend. */
  private retryStatus = 502;
  private retryMessage = '';

  private checkRate(): void {
    const { limiter, perIp } = this.ctx;
    const route = this.route!;
    if (!limiter || (!perIp && !route.rateLimit)) return this.dispatch();
    const decide = (d: RateDecision, then: () => void) => {
      if (this.st === St.Closed) return;
      if (d.allowed) return then();
      this.answer(429, ProxyError.rateLimited, 'too many requests from this client', false, Math.max(1, Math.ceil(d.retryAfterMs / 1000)));
    };
    const second = () => {
      if (!route.rateLimit) return this.dispatch();
      const d = limiter.take(`route:${route.name}:${this.ip}`, route.rateLimit);
      if (d instanceof Promise) void d.then((r) => decide(r, () => this.dispatch()), () => this.dispatch());
      else decide(d, () => this.dispatch());
    };
    if (!perIp) return second();
    const d = limiter.take(`ip:${this.ip}`, perIp);
    if (d instanceof Promise) void d.then((r) => decide(r, second), second);
    else decide(d, second);
  }

  private dispatch(): void {
    const route = this.route!;
    if (route.room) return this.dispatchRoom();
    const pool = route.pool;
    if (!pool || !pool.available) {
      return this.answer(503, ProxyError.noBackend, pool ? `no healthy backend in pool ${pool.name}` : `route ${route.name} has no pool`, false);
    }
    const head = this.head!;
    const cfg = pool.config;
    let u: Upstream | undefined;
    if (cfg.sticky && this.attempts === 0) {
      const id = serverIdFromCookie(readStickyCookie(headerValue(head, 'cookie'), cfg.sticky.cookie) ?? '');
      if (id !== undefined) u = pool.pickById(id);
    }
    if (!u && pool.sharedIndex && this.attempts === 0) {
      // Seed 002's shared index: the position comes from Redis (one INCR); on failure, local order.
      void pool.sharedIndex().then(
        (n) => this.picked(pool, pool.pickAt(n, undefined), true),
        () => this.picked(pool, pool.pick(undefined, undefined), true),
      );
      return;
    }
    this.picked(pool, u ?? pool.pick(this.hashKey(pool), this.tried ?? EMPTY), u === undefined);
  }

  /** After the choice: send to `u`, or queue when no backend has room. `fresh`: not the client's pinned one. */
  private picked(pool: PoolBalancer, u: Upstream | undefined, fresh: boolean): void {
    if (this.st === St.Closed) {
      if (u) pool.release(u);
      return;
    }
    const cfg = pool.config;
    // Pinned to nothing usable (new client, or its server is down): pin to this one (redispatch).
    if (u && fresh) this.pin(pool, u);
    if (u) return this.assign(u);
    // A retry that finds every backend tried (or full) fails now: queueing it would hold the
    // client for the queue timeout and then hand it, maybe, the backend that just failed.
    if (this.attempts > 0) return this.answer(this.retryStatus, ProxyError.badGateway, this.retryMessage, true);
    if (!pool.enqueue(this)) return this.answer(503, ProxyError.queueFull, `every backend of pool ${pool.name} is at its maxconn and the queue is full`, false);
    this.queuedOn = pool;
    this.queuedUntil = this.ctx.now + cfg.queue.timeoutMs;
    this.deadline = 0;
  }

  private hashKey(pool: PoolBalancer): string | undefined {
    const h = pool.config.hash;
    if (!h) return undefined;
    const head = this.head!;
    if (h.header) return headerValue(head, h.header.toLowerCase());
    if (h.cookie) return readStickyCookie(headerValue(head, 'cookie'), h.cookie);
    if (h.query) return queryParam(head.target, h.query);
    return undefined;
  }

  /** Waiter: a backend has room (inflight already counted). */
  granted(u: Upstream): void {
    this.queuedOn = undefined;
    if (this.st === St.Closed) {
      this.releaseTo(u);
      return;
    }
    if (this.pool) this.pin(this.pool, u);
    this.assign(u);
  }

  /** Sticky pools: the answer pins the client to `u`, unless its cookie names `u` already. */
  private pin(pool: PoolBalancer, u: Upstream): void {
    const sticky = pool.config.sticky;
    if (!sticky) return;
    if (serverIdFromCookie(readStickyCookie(headerValue(this.head!, 'cookie'), sticky.cookie) ?? '') === u.id) return;
    this.insertCookie = stickySetCookie(sticky.cookie, cookieValueFor(u.id), { secure: sticky.secure, ...(sticky.maxAgeSeconds ? { maxAgeSeconds: sticky.maxAgeSeconds } : {}) });
  }

  /** Waiter: the queue timeout passed (called by the tick). */
  queueExpired(): void {
    this.queuedOn = undefined;
    this.answer(503, ProxyError.queueTimeout, `no backend of pool ${this.route?.pool?.name ?? ''} had room within the queue timeout`, false);
  }

  private get pool(): PoolBalancer | undefined {
    return this.route?.room ? undefined : this.route?.pool;
  }

  private dispatchRoom(): void {
    const head = this.head!;
    const roomId = Router.roomId(this.route!, head.target, requestPath(head.target));
    if (roomId === undefined) {
      const where = this.route!.room!.query !== undefined ? `query parameter ${this.route!.room!.query}` : `path segment ${this.route!.room!.pathSegment}`;
      return this.answer(400, ProxyError.badRequest, `roomId: missing (expected in the ${where})`, false);
    }
    const t = this.ctx.rooms.resolve(roomId);
    const go = (r: RoomTarget) => {
      if (this.st === St.Closed) {
        if ('upstream' in r) this.ctx.rooms.release(r.upstream);
        return;
      }
      if ('upstream' in r) this.assign(r.upstream);
      else this.answer(r.status, r.error, r.message, false, r.status === 503 ? 1 : undefined);
    };
    if (t instanceof Promise) void t.then(go, () => go({ status: 503, error: ProxyError.noBackend, message: 'room lookup failed' }));
    else go(t);
  }

  private assign(u: Upstream): void {
    this.upstream = u;
    const conn = u.take(this.freshConn);
    conn.handler = this;
    this.conn = conn;
    this.outHead ??= this.requestHead();
    conn.write(this.outHead);
    this.armWait();
    if (this.reqBody && !this.reqBody.done) this.pumpBody();
  }

  /**
   * The deadline before the answer starts: the connect timeout until the backend connection is
   * up, then the client timeout while the request body is still coming, then the server timeout.
   */
  private armWait(): void {
    const l = this.ctx.limits;
    const conn = this.conn;
    let ms: number;
    if (conn !== undefined && !conn.connected) ms = l.connectTimeoutMs;
    else if (this.reqBody !== undefined && !this.reqBody.done) ms = l.clientTimeoutMs;
    else ms = l.serverTimeoutMs;
    this.deadline = this.ctx.now + ms;
  }

  /** UpstreamHandler: the backend connection is up. */
  onConnected(): void {
    if (this.st === St.Busy && !this.resStarted) this.armWait();
  }

  /** Sends buffered request-body bytes to the backend (passing through, framing unchanged). */
  private pumpBody(): void {
    const b = this.buf;
    const body = this.reqBody!;
    if (!b) return;
    let n: number;
    try {
      n = body.advance(b, 0, b.length);
    } catch (err) {
      return this.fail(400, ProxyError.badRequest, (err as Error).message);
    }
    this.reqBodyBytes += n;
    const max = this.ctx.limits.maxBodyBytes;
    if (max > 0 && this.reqBodyBytes > max) return this.fail(413, ProxyError.bodyTooLarge, `request body is over the limit of ${max} bytes`);
    this.buf = n < b.length ? b.subarray(n) : undefined;
    if (n > 0 && !this.conn!.write(n === b.length ? b : b.subarray(0, n))) this.pauseClientUntilBackendDrains();
    if (body.done && this.buf) this.pauseClient();
    if (!this.resStarted) this.armWait();
  }

  /** Forwarding state of the request head being rewritten (requestHead; read by its callbacks). */
  private fwdXff: string | undefined;
  private fwdCookies: string | undefined;
  private fwdSticky: string | undefined;
  /** The forwarding headers of the common request (no incoming X-Forwarded-For, no cookie kept
   * aside, HTTP/1.1, no upgrade) are the same for every request of a connection with the same
   * Host: made once, as bytes. */
  private fwdCache: { host: string | undefined; bytes: Buffer } | undefined;
  private readonly dropRequestField = (i: number): boolean => {
    const head = this.head!;
    switch (head.kinds[i]) {
      case H.XForwardedFor: {
        const v = fieldValue(head, i);
        this.fwdXff = this.fwdXff === undefined ? v : `${this.fwdXff}, ${v}`;
        return true;
      }
      case H.XForwardedProto:
      case H.XForwardedHost:
      case H.XClientIp:
        return true;
      case H.Cookie: {
        const sticky = this.fwdSticky;
        if (sticky === undefined) return false;
        // `indirect`: the backend never sees the balancer's cookie.
        const rest = stripStickyCookie(fieldValue(head, i), sticky);
        if (rest !== undefined) this.fwdCookies = this.fwdCookies === undefined ? rest : `${this.fwdCookies}; ${rest}`;
        return true;
      }
      default:
        return isHopByHop(head, i);
    }
  };
  private readonly requestExtra = (): string | Buffer => {
    const head = this.head!;
    const common = this.fwdXff === undefined && this.fwdCookies === undefined && head.upgrade === undefined && head.minor === 1;
    if (common && this.fwdCache !== undefined && this.fwdCache.host === head.host) return this.fwdCache.bytes;
    let s = this.fwdCookies === undefined ? '' : `cookie: ${this.fwdCookies}\r\n`;
    s += `x-forwarded-for: ${this.fwdXff === undefined ? '' : `${this.fwdXff}, `}${this.ip}\r\nx-forwarded-proto: ${this.proto}\r\n`;
    if (head.host !== undefined) s += `x-forwarded-host: ${head.host}\r\n`;
    // seed 004: the client's address as `ip:port` (HAProxy `http-request set-header X-Client-IP %[src]:%[src_port]`).
    s += `x-client-ip: ${this.ip.includes(':') ? `[${this.ip}]` : this.ip}:${this.port}\r\n`;
    if (head.upgrade !== undefined) s += `connection: upgrade\r\nupgrade: ${head.upgrade}\r\n`;
    else if (head.minor === 0) s += 'connection: close\r\n';
    if (!common) return s;
    this.fwdCache = { host: head.host, bytes: Buffer.from(s, 'latin1') };
    return this.fwdCache.bytes;
  };

  /** The request head as the backend gets it: hop-by-hop headers dropped, forwarding headers set. */
  private requestHead(): Buffer {
    this.fwdXff = this.fwdCookies = undefined;
    this.fwdSticky = this.pool?.config.sticky?.cookie;
    return rewriteHead(this.head!, this.dropRequestField, this.requestExtra);
  }

  // ---- backend side ------------------------------------------------------------------------

  onData(buf: Buffer, n: number): boolean {
    if (this.st === St.Tunnel) {
      this.deadline = this.ctx.now + this.ctx.limits.tunnelTimeoutMs;
      return this.socket.write(copy(buf, 0, n));
    }
    if (this.st !== St.Busy) return false;
    if (!this.res) {
      if (this.resBuf === undefined) return this.parseResponse(buf, n);
      this.resBuf = Buffer.concat([this.resBuf, buf.subarray(0, n)]);
      return this.parseResponse(this.resBuf, this.resBuf.length);
    }
    const body = this.resBody!;
    let used: number;
    try {
      used = body.advance(buf, 0, n);
    } catch {
      return this.abort();
    }
    this.deadline = this.ctx.now + this.ctx.limits.serverTimeoutMs;
    const ok = used > 0 ? this.socket.write(copy(buf, 0, used)) : true;
    if (used < n) this.conn!.uses = -1; // bytes past the answer: the backend is out of step
    if (body.done) {
      this.finish();
      return true;
    }
    return ok;
  }

  /**
   * Reads the answer's head from `rb[0..len)`: the shared read buffer (nothing is copied for a head
   * that arrives whole: rewriteHead copies what is kept), or `resBuf` (what arrived before).
   * Nothing may keep a reference into `rb` after this returns: `this.res` is used for its numbers only.
   */
  private parseResponse(rb: Buffer, len: number): boolean {
    const head = this.head!;
    let from = 0;
    for (;;) {
      let res: ResponseHead;
      let end: number;
      try {
        end = findHeadEnd(rb, from, len, 64 * 1024, 502);
        if (end === -1) {
          if (rb !== this.resBuf || from > 0) this.resBuf = copy(rb, from, len);
          return true;
        }
        res = parseResponseHead(rb, from, end);
      } catch (err) {
        this.upstreamFailed(false);
        this.fail(502, ProxyError.badGateway, `invalid response from backend: ${(err as Error).message}`);
        return false;
      }
      if (res.status < 200 && res.status !== 101) {
        // 1xx (100 Continue, 103 Early Hints): passed on to HTTP/1.1 clients, then the real answer.
        if (head.minor === 1) this.socket.write(copy(rb, from, end));
        from = end;
        if (from === len) {
          this.resBuf = undefined;
          return true;
        }
        continue;
      }
      this.res = res;
      this.resBuf = undefined;
      if (res.status === 101) {
        if (head.upgrade === undefined) {
          this.upstreamFailed(false);
          this.fail(502, ProxyError.badGateway, 'backend switched protocols without being asked');
          return false;
        }
        return this.startTunnel(copy(rb, from, len));
      }
      this.upstreamResult(res.status < 500);
      if (!responseHasBody(head.method, res.status)) this.resBody = this.resLength.reset(0);
      else if (res.chunked) this.resBody = new ChunkedBody(502);
      else if (res.contentLength >= 0) this.resBody = this.resLength.reset(res.contentLength);
      else {
        this.resBody = new UntilCloseBody();
        this.closeAfter = true;
      }
      if (this.ctx.draining || (this.reqBody && !this.reqBody.done)) this.closeAfter = true;
      let used: number;
      try {
        used = this.resBody.advance(rb, end, len);
      } catch (err) {
        // Nothing has reached the client yet: it gets a 502 rather than a cut connection.
        this.upstreamFailed(false);
        this.fail(502, ProxyError.badGateway, `invalid response from backend: ${(err as Error).message}`);
        return false;
      }
      if (end + used < len) this.conn!.uses = -1;
      const data = this.responseHead(res, used > 0 ? rb.subarray(end, end + used) : undefined);
      this.resStarted = true;
      this.deadline = this.ctx.now + this.ctx.limits.serverTimeoutMs;
      const ok = this.socket.write(data);
      if (this.resBody.done) {
        this.finish();
        return true;
      }
      return ok;
    }
  }

  /** A Cache-Control the client may keep went through (responseHead; read by its callbacks). */
  private cacheControlKept = false;
  private readonly dropResponseField = (i: number): boolean => {
    const res = this.res!;
    if (this.insertCookie !== undefined && res.kinds[i] === H.CacheControl) {
      // `nocache`: a response that pins a client must never be served to others from a cache.
      if (!/private|no-store|no-cache/i.test(fieldValue(res, i))) return true;
      this.cacheControlKept = true;
      return false;
    }
    return isHopByHop(res, i);
  };
  private readonly responseExtra = (): string => {
    let s = '';
    if (this.insertCookie !== undefined) s += `set-cookie: ${this.insertCookie}\r\n${this.cacheControlKept ? '' : 'cache-control: private\r\n'}`;
    if (this.closeAfter) s += 'connection: close\r\n';
    else if (this.head!.minor === 0) s += 'connection: keep-alive\r\n';
    return s;
  };

  /** The response head (`this.res`) as the client gets it (hop-by-hop headers dropped), with `tail` after it. */
  private responseHead(res: ResponseHead, tail: Buffer | undefined): Buffer {
    this.cacheControlKept = false;
    return rewriteHead(res, this.dropResponseField, this.responseExtra, tail);
  }

  private startTunnel(rb: Buffer): boolean {
    this.st = St.Tunnel;
    this.resStarted = true;
    this.upstreamResult(true);
    this.socket.write(rb); // the 101 head as the backend sent it, and any first frames after it
    this.deadline = this.ctx.now + this.ctx.limits.tunnelTimeoutMs;
    this.record(101);
    if (this.buf) {
      this.conn!.write(this.buf);
      this.buf = undefined;
    }
    this.resumeClient();
    return true;
  }

  onClose(err: Error | undefined, connected: boolean): void {
    const conn = this.conn;
    this.conn = undefined;
    if (this.st === St.Closed) return;
    if (this.st === St.Tunnel) {
      this.releaseUpstream();
      this.socket.end();
      this.st = St.Closed;
      // A client that never closes its side is cut after a short grace (the tick's timeout).
      this.deadline = this.ctx.now + 5_000;
      return;
    }
    if (this.res && this.resBody instanceof UntilCloseBody) {
      this.resBody.done = true;
      return this.finish();
    }
    if (this.resStarted) {
      this.abort();
      return;
    }
    // Nothing reached the client yet: the request may go to another backend.
    const reused = conn !== undefined && conn.uses > 0;
    if (!reused || !connected) this.upstreamResult(false);
    const head = this.head!;
    const pool = this.pool;
    const u = this.upstream;
    const bodyless = this.reqBody === undefined;
    const status = connected ? 502 : 503;
    const message = connected ? `backend closed the connection before answering (${err?.message ?? 'closed'})` : `cannot connect to a backend (${err?.message ?? 'refused'})`;
    if (pool && u && bodyless && isIdempotent(head.method) && this.attempts < pool.config.retries) {
      this.attempts++;
      this.retryStatus = status;
      this.retryMessage = message;
      // A kept-alive connection the backend closed meanwhile says nothing about the backend.
      if (!reused) (this.tried ??= new Set()).add(u.id);
      else this.freshConn = true;
      this.releaseUpstream();
      this.resBuf = undefined;
      this.ctx.retried(pool.name);
      return this.dispatch();
    }
    if (this.room && u && bodyless && isIdempotent(head.method) && reused && this.attempts === 0) {
      this.attempts++;
      this.freshConn = true;
      this.resBuf = undefined;
      return this.assign(u);
    }
    this.fail(status, ProxyError.badGateway, message);
  }

  private get room(): boolean {
    return this.route?.room !== undefined;
  }

  /** The answer is complete: the backend connection goes back to the pool, the client waits for more. */
  private finish(): void {
    const conn = this.conn;
    this.conn = undefined;
    const res = this.res!;
    // An HTTP/1.0 request went with `connection: close` (requestHead): the backend may close
    // after answering, so the connection is not used again (RFC 9112 §9.6).
    const reusable = conn !== undefined && conn.alive && conn.uses >= 0 && !res.close && this.head!.minor === 1 && !(this.resBody instanceof UntilCloseBody) && (!this.reqBody || this.reqBody.done);
    if (conn) {
      if (reusable) this.upstream!.putIdle(conn);
      else conn.destroy();
    }
    this.record(res.status);
    this.releaseUpstream();
    this.next();
  }

  /** Ready for the next request on this connection (or closes it). */
  private next(): void {
    if (this.closeAfter || this.ctx.draining || (this.clientEnded && !this.buf)) {
      this.st = St.Closed;
      this.socket.end();
      this.ctx.conns.delete(this);
      return;
    }
    this.st = St.Head;
    this.head = undefined;
    this.route = undefined;
    this.reqBody = undefined;
    this.reqBodyBytes = 0;
    this.outHead = undefined;
    this.res = undefined;
    this.resBody = undefined;
    this.resBuf = undefined;
    this.resStarted = false;
    this.attempts = 0;
    this.tried = undefined;
    this.freshConn = false;
    this.drainSock = undefined;
    this.insertCookie = undefined;
    this.deadline = this.ctx.now + this.ctx.limits.keepAliveTimeoutMs;
    this.awaitingFirstByte = true;
    this.resumeClient();
    if (this.buf) this.parseHead();
  }

  // ---- outcomes ----------------------------------------------------------------------------

  private upstreamResult(ok: boolean): void {
    const pool = this.pool;
    if (pool && this.upstream) pool.record(this.upstream, ok, this.ctx.now);
  }

  private upstreamFailed(_connected: boolean): void {
    this.upstreamResult(false);
  }

  private releaseTo(u: Upstream): void {
    const pool = this.pool;
    if (pool) pool.release(u);
    else this.ctx.rooms.release(u);
  }

  private releaseUpstream(): void {
    const u = this.upstream;
    if (!u) return;
    this.upstream = undefined;
    this.releaseTo(u);
  }

  private readonly rec: ExchangeRecord = { pool: '', route: '', upstream: undefined, method: '', target: '', status: 0, seconds: 0, client: '', error: undefined };

  private record(status: number, error?: string): void {
    const head = this.head;
    if (!head) return;
    const r = this.rec;
    r.pool = this.room ? 'rooms' : (this.route?.pool?.name ?? '');
    r.route = this.route?.name ?? '';
    r.upstream = this.upstream;
    r.method = head.method;
    r.target = head.target;
    r.status = status;
    r.seconds = (performance.now() - this.started) / 1000;
    r.client = this.ip;
    r.error = error;
    this.ctx.record(r);
  }

  /** The proxy answers the request itself; the connection stays open unless `close`. */
  private answer(status: number, error: string, message: string, close: boolean, retryAfterSeconds?: number): void {
    // A request body not read yet cannot be skipped reliably: close after answering.
    const unreadBody = this.reqBody !== undefined && !this.reqBody.done && this.conn === undefined;
    this.closeAfter = this.closeAfter || close || unreadBody;
    this.socket.write(errorResponse(status, error, message, { close: this.closeAfter, retryAfterSeconds, minor: this.head?.minor ?? 1, head: this.head?.method === 'HEAD' }));
    this.record(status, error);
    this.releaseUpstream();
    if (this.queuedOn) {
      this.queuedOn.dequeue(this);
      this.queuedOn = undefined;
    }
    this.next();
  }

  /** An error during an exchange: answered when nothing was sent yet, else the connection is cut. */
  private fail(status: number, error: string, message: string): void {
    const conn = this.conn;
    this.conn = undefined;
    conn?.destroy();
    if (this.resStarted) {
      this.abort();
      return;
    }
    this.answer(status, error, message, true);
  }

  private answerAndClose(status: number, error: string, message: string): void {
    this.st = St.Busy;
    this.closeAfter = true;
    this.socket.write(errorResponse(status, error, message, { close: true }));
    this.st = St.Closed;
    this.socket.end();
    this.ctx.conns.delete(this);
  }

  /** Cuts both sides (an answer half-sent cannot be repaired). */
  private abort(): boolean {
    if (this.head && this.st !== St.Closed) this.record(this.res?.status ?? 502, 'aborted');
    this.close();
    return false;
  }

  /** The tick found the current wait over. */
  timeout(): void {
    switch (this.st) {
      case St.Head:
        if (this.buf && !this.awaitingFirstByte) this.answerAndClose(408, ProxyError.requestTimeout, 'the request head did not arrive in time');
        else this.close();
        return;
      case St.Busy: {
        const conn = this.conn;
        if (this.resStarted || !conn) return void this.abort();
        if (!conn.connected) {
          // A connect timeout is a failed connect: the request may go to another backend.
          this.conn = undefined;
          conn.destroy();
          return this.onClose(new Error('connect timeout'), false);
        }
        if (this.reqBody && !this.reqBody.done && this.drainSock !== conn.socket) {
          // The client stopped sending its body (not the backend's fault).
          return this.fail(408, ProxyError.requestTimeout, 'the request body did not arrive in time');
        }
        this.upstreamResult(false);
        this.fail(504, ProxyError.gatewayTimeout, 'the backend did not answer in time');
        return;
      }
      default:
        this.close();
    }
  }

  /** Closes the connection and everything it holds. Idempotent. */
  close(): void {
    if (this.st === St.Closed && !this.conn && !this.upstream) {
      this.ctx.conns.delete(this);
      this.socket.destroy();
      return;
    }
    this.st = St.Closed;
    const conn = this.conn;
    this.conn = undefined;
    conn?.destroy();
    if (this.queuedOn) {
      this.queuedOn.dequeue(this);
      this.queuedOn = undefined;
    }
    this.releaseUpstream();
    this.ctx.conns.delete(this);
    this.socket.destroy();
  }

  /** Graceful shutdown: an idle connection closes now, a busy one after its answer. */
  drain(): void {
    if (this.st === St.Head && !this.buf) this.close();
  }
}

function copy(buf: Buffer, from: number, to: number): Buffer {
  const out = Buffer.allocUnsafe(to - from);
  buf.copy(out, 0, from, to);
  return out;
}

/** `::ffff:1.2.3.4` → `1.2.3.4`: backends see the address the client used. */
function normalizeIp(ip: string): string {
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}
