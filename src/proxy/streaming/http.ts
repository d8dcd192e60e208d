/**
 * The streaming HTTP proxy (SRS proxy's PROXY_HTTP_SERVER, seed 003): HTTP-FLV, HTTP-TS and HLS
 * players connect here and are served by the origin that holds their stream.
 *
 * - `GET /app/stream.flv` (and `/app/stream.ts`, HTTP-TS live): the stream key is
 *   `vhost(Host)/app/stream`; its origin (`locate(key, 'play')`) is asked for the same path and the
 *   response is streamed back unchanged (status, headers but hop-by-hop ones, body), for as long
 *   as either side keeps it open: a client that goes away aborts the origin request, an origin that
 *   ends or fails ends or aborts the client's response.
 * - `GET /app/stream.m3u8`: the playlist is fetched from the origin (bounded size and time), every
 *   URI in it is rewritten to point at Switchboard with `spbhid=<id>` (the client's own `spbhid`
 *   when it sent one, else a new random id), the session is indexed (`indexHls`), and the paths it
 *   names are remembered (SegmentIndex) for players that drop the query.
 * - `GET <segment>?spbhid=X`: the session's stream (`streamBySpbhid`) → its origin → piped. Without
 *   `spbhid`: a remembered path → its stream's origin; a `.ts` nobody remembers is HTTP-TS live.
 *
 * Errors are JSON `{error, message}`: 400 naming the field, 404 unknown session, AppError statuses
 * from `locate` (503 `origin_unavailable`/`no_origin`), 502 origin unreachable or bad, 504 origin
 * too slow to answer, 503 when the connection limit is reached. None of them waits on anything but
 * the bounded origin connect.
 */
import { randomBytes } from 'node:crypto';
import { Agent, createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream';
import type { Server } from '../../core/model.js';
import { AppError } from '../../errors.js';
import { ORIGINS_POOL } from '../../pools/origins/service.js';
import { originListen } from '../../pools/origins/srs.js';
import { hasControl, streamFromHttpPath, streamKey, vhostOf } from '../../pools/origins/stream-key.js';
import { SESSION_TTL_MS, type StreamService } from '../../pools/origins/streams.js';
import { isForbiddenDestination, type NetworkPolicy } from '../../security/network-policy.js';
import type { StateStore } from '../../store/store.js';
import { MAX_INDEX_KEY, StoreUnavailableError } from '../../store/store.js';
import { isPlaylist, MAX_PLAYLIST_BYTES, rewritePlaylist, SPBHID_PARAM, validSpbhid } from './m3u8.js';

/** The subset of a pino logger the proxy uses. */
export interface StreamHttpLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

/**
 * Remembers which stream an HLS resource path belongs to, for requests that carry no `spbhid`.
 * Keys are `vhost` + origin path (`__defaultVhost__/live/stream-3.ts`).
 */
export interface SegmentIndex {
  remember(path: string, streamKey: string): Promise<void>;
  lookup(path: string): Promise<string | undefined>;
}

export interface StreamHttpProxyOptions {
  streams: Pick<StreamService, 'locate' | 'indexHls' | 'streamBySpbhid'>;
  /** Listen address; default 0.0.0.0. */
  host?: string;
  /** Listen port (SRS proxy's PROXY_HTTP_SERVER); default 18080, 0 for any free port. */
  port?: number;
  logger?: StreamHttpLogger;
  /** Origin connect + response headers, and a whole playlist fetch; default 10 000 ms. */
  timeoutMs?: number;
  /** An origin response silent for this long is aborted; default 30 000 ms. */
  idleTimeoutMs?: number;
  /** Most concurrent requests (streams count while they last); default 10 000. */
  maxConnections?: number;
  /** Largest playlist read from an origin; default 1 MiB. */
  maxPlaylistBytes?: number;
  /** Where segment paths → streams are remembered; default in memory ({@link memorySegmentIndex}). */
  segments?: SegmentIndex;
  /**
   * Checked at connect time (DNS rebinding, refused networks): origin IP literals and every
   * address an origin name resolves to. A refusal answers 502 `forbidden_destination`.
   */
  networkPolicy?: Pick<NetworkPolicy, 'lookup' | 'assertAllowedLiteral'>;
}

/** Counters for metrics and tests. */
export interface StreamHttpStats {
  requests: number;
  active: number;
  refused: number;
  failed: number;
}

const noop = (): void => {};
const silent: StreamHttpLogger = { info: noop, warn: noop, debug: noop };

/** Extensions served as HLS resources (segments, init sections, keys, subtitles) by session or path. */
const RESOURCE_EXT = /\.(ts|m4s|mp4|m4a|m4v|aac|key|vtt|webvtt)$/;
const MAX_PATH = 2048;
/** Response headers not forwarded (hop-by-hop). */
const HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'trailers', 'transfer-encoding', 'upgrade']);
/** Request headers forwarded to the origin for relayed responses. */
const FORWARD = ['accept', 'range', 'if-range', 'if-none-match', 'if-modified-since', 'user-agent'] as const;
/** For a playlist, which the proxy reads whole and rewrites: no ranges, no conditionals. */
const FORWARD_PLAYLIST = ['accept', 'user-agent'] as const;

/** An origin that could not be reached or answered badly: 502 (504 for `timeout`). */
class OriginError extends Error {
  constructor(
    readonly code: 'origin_unreachable' | 'origin_timeout' | 'origin_bad_response' | 'origin_no_http' | 'forbidden_destination',
    message: string,
  ) {
    super(message);
    this.name = 'OriginError';
  }
}

function bad(field: string, reason: string): AppError {
  return new AppError(400, 'bad_request', `${field} ${reason}`, { field, reason });
}

/** Where Switchboard reaches an origin's HTTP server: its first `http` listen entry. */
export function originHttpAddress(origin: Pick<Server, 'endpoints'>): { host: string; port: number } | undefined {
  return originListen(origin, 'http');
}

/**
 * Checks a resource path (a segment, key or init section): at most 2048 characters, `/`-rooted,
 * percent-decodable, without empty, `.` or `..` segments or control characters. 400 (`path`).
 */
export function checkResourcePath(path: string): string {
  if (path.length === 0 || path.length > MAX_PATH) throw bad('path', `must be 1 to ${MAX_PATH} characters`);
  if (!path.startsWith('/')) throw bad('path', 'must start with "/"');
  const segments = path.slice(1).split('/');
  for (const raw of segments) {
    let seg: string;
    try {
      seg = decodeURIComponent(raw);
    } catch {
      throw bad('path', 'is not valid percent-encoding');
    }
    if (seg === '' || seg === '.' || seg === '..') throw bad('path', 'must not have empty, "." or ".." segments');
    if (hasControl(seg) || seg.includes('/')) throw bad('path', 'must not contain control characters or encoded "/"');
  }
  return path;
}

/** An in-process SegmentIndex: entries live `ttlMs` since last remembered, at most `max` of them. */
export function memorySegmentIndex(ttlMs = SESSION_TTL_MS, max = 100_000, now: () => number = Date.now): SegmentIndex {
  const entries = new Map<string, { key: string; expires: number }>();
  return {
    remember(path, key) {
      entries.delete(path);
      entries.set(path, { key, expires: now() + ttlMs });
      while (entries.size > max) entries.delete(entries.keys().next().value!);
      return Promise.resolve();
    },
    lookup(path) {
      const e = entries.get(path);
      if (!e) return Promise.resolve(undefined);
      if (e.expires <= now()) {
        entries.delete(path);
        return Promise.resolve(undefined);
      }
      return Promise.resolve(e.key);
    },
  };
}

/** Index name (StateStore.setIndex) of remembered HLS paths in the origins pool. */
export const SEGMENT_INDEX = 'hlspath';

/**
 * A SegmentIndex in the state store (shared by every instance): `setIndex(origins, hlspath, ...)`.
 * A path remembered less than a quarter of `ttlMs` ago is not written again (playlists are
 * re-fetched every few seconds and name the same segments).
 */
export function storeSegmentIndex(store: Pick<StateStore, 'setIndex' | 'getIndex'>, ttlMs = SESSION_TTL_MS, now: () => number = Date.now): SegmentIndex {
  const written = new Map<string, { key: string; at: number }>();
  return {
    async remember(path, key) {
      const w = written.get(path);
      const t = now();
      if (w && w.key === key && t - w.at < ttlMs / 4) return;
      await store.setIndex(ORIGINS_POOL, SEGMENT_INDEX, path, key, ttlMs);
      written.delete(path);
      written.set(path, { key, at: t });
      while (written.size > 10_000) written.delete(written.keys().next().value!);
    },
    lookup(path) {
      return store.getIndex(ORIGINS_POOL, SEGMENT_INDEX, path);
    },
  };
}

export class StreamHttpProxy {
  private readonly server: HttpServer;
  private readonly agent = new Agent({ keepAlive: true, maxFreeSockets: 64 });
  private readonly log: StreamHttpLogger;
  private readonly timeoutMs: number;
  private readonly idleTimeoutMs: number;
  private readonly maxConnections: number;
  private readonly maxPlaylistBytes: number;
  private readonly segments: SegmentIndex;
  private readonly upstreams = new Set<{ destroy(): void }>();
  readonly stats: StreamHttpStats = { requests: 0, active: 0, refused: 0, failed: 0 };
  private bound?: AddressInfo;

  constructor(private readonly opts: StreamHttpProxyOptions) {
    this.log = opts.logger ?? silent;
    this.timeoutMs = positive('timeoutMs', opts.timeoutMs ?? 10_000);
    this.idleTimeoutMs = positive('idleTimeoutMs', opts.idleTimeoutMs ?? 30_000);
    this.maxConnections = positive('maxConnections', opts.maxConnections ?? 10_000);
    this.maxPlaylistBytes = positive('maxPlaylistBytes', opts.maxPlaylistBytes ?? MAX_PLAYLIST_BYTES);
    this.segments = opts.segments ?? memorySegmentIndex();
    this.server = createServer({ headersTimeout: 10_000, requestTimeout: 30_000, keepAliveTimeout: 5_000, maxHeaderSize: 16 * 1024 }, (req, res) => this.handle(req, res));
    // Idle keep-alive sockets beyond the request limit are dropped by node itself.
    this.server.maxConnections = this.maxConnections * 2;
    this.server.on('clientError', (_err, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      else socket.destroy();
    });
  }

  /** The bound port (after listen). */
  get port(): number {
    return this.bound?.port ?? 0;
  }

  /** Starts listening; resolves with the bound address. */
  listen(): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once('error', onError);
      this.server.listen(this.opts.port ?? 18080, this.opts.host ?? '0.0.0.0', () => {
        this.server.off('error', onError);
        this.server.on('error', (err) => this.log.warn({ err: err.message }, 'stream http proxy: server error'));
        this.bound = this.server.address() as AddressInfo;
        this.log.info({ host: this.bound.address, port: this.bound.port }, 'stream http proxy listening');
        resolve({ host: this.bound.address, port: this.bound.port });
      });
    });
  }

  /** Stops listening, aborts every stream in flight and closes every connection. */
  async close(): Promise<void> {
    const done = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const u of this.upstreams) u.destroy();
    this.server.closeAllConnections();
    this.agent.destroy();
    if (this.server.listening) await done;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    this.stats.requests++;
    req.resume(); // a body (none expected) is drained, never buffered
    if (this.stats.active >= this.maxConnections) {
      this.stats.refused++;
      res.setHeader('retry-after', '1');
      this.json(res, 503, 'too_many_connections', `the streaming proxy serves at most ${this.maxConnections} requests at once; retry`);
      return;
    }
    this.stats.active++;
    res.once('close', () => this.stats.active--);
    this.route(req, res).catch((err: unknown) => this.fail(req, res, err));
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      throw new AppError(405, 'method_not_allowed', 'only GET and HEAD are served', { field: 'method', reason: 'not allowed' });
    }
    const target = req.url ?? '';
    if (!target.startsWith('/') || target.length > MAX_PATH + 4096) throw bad('path', `must start with "/" and be at most ${MAX_PATH} characters`);
    let url: URL;
    try {
      url = new URL(target, 'http://switchboard.invalid');
    } catch {
      throw bad('path', 'is not a valid request target');
    }
    const path = url.pathname;
    const spbhid = url.searchParams.get(SPBHID_PARAM);
    if (spbhid !== null && !validSpbhid(spbhid)) throw bad(SPBHID_PARAM, 'must be 1 to 64 of A-Z a-z 0-9 _ -');
    const host = req.headers.host;

    if (path.endsWith('.m3u8')) return this.playlist(req, res, url, spbhid);
    if (path.endsWith('.flv')) return this.live(req, res, url);
    if (!RESOURCE_EXT.test(path)) throw bad('path', 'must be /app/stream.flv, /app/stream.m3u8, /app/stream.ts or an HLS segment');
    checkResourcePath(path);
    if (spbhid !== null) {
      const key = await this.opts.streams.streamBySpbhid(spbhid);
      if (key === undefined) throw new AppError(404, 'unknown_session', `HLS session ${spbhid} is not known or expired: fetch the playlist again`, { field: SPBHID_PARAM, reason: 'not found' });
      return this.pipe(req, res, key, originTarget(url));
    }
    const key = await this.segments.lookup(vhostOf(host) + path);
    if (key !== undefined) return this.pipe(req, res, key, originTarget(url));
    if (path.endsWith('.ts')) return this.live(req, res, url);
    throw new AppError(404, 'not_found', `${path} is not a segment of any playlist served here: fetch the playlist again`, { field: 'path', reason: 'not found' });
  }

  /** HTTP-FLV / HTTP-TS live: the stream's origin, same path and query. */
  private async live(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const { app, stream } = streamFromHttpPath(url.pathname);
    const key = streamKey(req.headers.host, app, stream);
    return this.pipe(req, res, key, originTarget(url));
  }

  private async pipe(req: IncomingMessage, res: ServerResponse, key: string, pathAndQuery: string): Promise<void> {
    const origin = await this.opts.streams.locate(key, 'play');
    const upstream = await this.request(req, res, origin, pathAndQuery);
    if (res.destroyed) {
      upstream.destroy();
      return;
    }
    res.writeHead(upstream.statusCode ?? 502, responseHeaders(upstream.headers));
    upstream.socket.setTimeout(this.idleTimeoutMs, () => upstream.destroy(new OriginError('origin_timeout', `origin silent for ${this.idleTimeoutMs} ms`)));
    this.log.debug({ stream: key, origin: origin.id, path: pathAndQuery, status: upstream.statusCode }, 'stream http: relaying');
    await new Promise<void>((resolve) => {
      pipeline(upstream, res, (err) => {
        if (err && !res.writableFinished) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code !== 'ERR_STREAM_PREMATURE_CLOSE') this.log.debug({ stream: key, origin: origin.id, err: err.message }, 'stream http: relay ended with an error');
        }
        resolve();
      });
    });
  }

  private async playlist(req: IncomingMessage, res: ServerResponse, url: URL, given: string | null): Promise<void> {
    const { app, stream } = streamFromHttpPath(url.pathname);
    let key = streamKey(req.headers.host, app, stream);
    // A known session keeps its stream (a master playlist's variants live on the same origin).
    if (given !== null) key = (await this.opts.streams.streamBySpbhid(given)) ?? key;
    const spbhid = given ?? randomBytes(12).toString('base64url');
    const origin = await this.opts.streams.locate(key, 'play');
    const upstream = await this.request(req, res, origin, originTarget(url), 'GET', FORWARD_PLAYLIST);
    const status = upstream.statusCode ?? 502;
    if (status !== 200) {
      upstream.resume();
      if (status >= 400 && status < 500) throw new AppError(status, status === 404 ? 'not_found' : 'origin_refused', `origin ${origin.id} answered ${status} for ${url.pathname}`, { stream: key });
      throw new OriginError('origin_bad_response', `origin ${origin.id} answered ${status} for ${url.pathname}`);
    }
    const body = await this.readBounded(upstream, origin.id);
    if (!isPlaylist(body)) throw new OriginError('origin_bad_response', `origin ${origin.id} answered ${url.pathname} with something that is not an HLS playlist`);
    const rewritten = rewritePlaylist(body, url.pathname, spbhid);
    await this.opts.streams.indexHls(key, spbhid);
    const vhost = vhostOf(req.headers.host);
    // Paths too long to index are still served by their spbhid.
    const remembered = rewritten.paths.map((p) => vhost + p).filter((p) => p.length <= MAX_INDEX_KEY);
    await Promise.all(remembered.map((p) => this.segments.remember(p, key)));
    if (res.destroyed) return;
    const out = Buffer.from(rewritten.text, 'utf8');
    res.writeHead(200, {
      'content-type': upstream.headers['content-type'] ?? 'application/vnd.apple.mpegurl',
      'content-length': out.length,
      'cache-control': 'no-cache',
    });
    res.end(req.method === 'HEAD' ? undefined : out);
  }

  /** Reads a playlist body: at most maxPlaylistBytes, within timeoutMs. */
  private readBounded(upstream: IncomingMessage, originId: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const timer = setTimeout(() => upstream.destroy(new OriginError('origin_timeout', `origin ${originId} took over ${this.timeoutMs} ms to send the playlist`)), this.timeoutMs);
      upstream.on('data', (c: Buffer) => {
        size += c.length;
        if (size > this.maxPlaylistBytes) {
          upstream.destroy(new OriginError('origin_bad_response', `origin ${originId} sent a playlist over ${this.maxPlaylistBytes} bytes`));
          return;
        }
        chunks.push(c);
      });
      upstream.once('end', () => {
        clearTimeout(timer);
        resolve(Buffer.concat(chunks).toString('utf8'));
      });
      upstream.once('error', (err) => {
        clearTimeout(timer);
        reject(err instanceof OriginError ? err : new OriginError('origin_unreachable', `origin ${originId}: ${err.message}`));
      });
      upstream.once('close', () => {
        clearTimeout(timer);
        if (!upstream.complete) reject(new OriginError('origin_bad_response', `origin ${originId} closed before the playlist ended`));
      });
    });
  }

  /**
   * Sends the request to the origin; resolves with its response once the headers are in (within
   * timeoutMs). The origin request is aborted when the client goes away, and on close().
   */
  private request(
    req: IncomingMessage,
    res: ServerResponse,
    origin: Server,
    pathAndQuery: string,
    method = req.method ?? 'GET',
    forward: readonly string[] = FORWARD,
  ): Promise<IncomingMessage> {
    const addr = originHttpAddress(origin);
    if (!addr) return Promise.reject(new OriginError('origin_no_http', `origin ${origin.id} lists no HTTP endpoint`));
    const headers: OutgoingHttpHeaders = { host: hostHeader(addr.host, addr.port) };
    for (const name of forward) {
      const v = req.headers[name];
      if (v !== undefined) (headers as Record<string, string | string[]>)[name] = v;
    }
    const forwardedFor = req.headers['x-forwarded-for'];
    const client = req.socket.remoteAddress;
    if (client) headers['x-forwarded-for'] = typeof forwardedFor === 'string' ? `${forwardedFor}, ${client}` : client;
    const policy = this.opts.networkPolicy;
    if (policy) {
      try {
        policy.assertAllowedLiteral(addr.host);
      } catch (err) {
        return Promise.reject(new OriginError('forbidden_destination', `origin ${origin.id}: ${(err as Error).message}`));
      }
    }
    return new Promise((resolve, reject) => {
      const upstream = httpRequest({ host: addr.host, port: addr.port, method, path: pathAndQuery, headers, agent: this.agent, ...(policy ? { lookup: policy.lookup } : {}) });
      const handle = { destroy: () => upstream.destroy() };
      this.upstreams.add(handle);
      let settled = false;
      const timer = setTimeout(() => upstream.destroy(new OriginError('origin_timeout', `origin ${origin.id} (${addr.host}:${addr.port}) did not answer within ${this.timeoutMs} ms`)), this.timeoutMs);
      const onClientGone = () => {
        if (!res.writableFinished) upstream.destroy();
      };
      res.once('close', onClientGone);
      upstream.once('close', () => {
        clearTimeout(timer);
        this.upstreams.delete(handle);
        res.off('close', onClientGone);
        if (!settled) {
          settled = true;
          reject(new OriginError('origin_unreachable', `origin ${origin.id} (${addr.host}:${addr.port}) closed the connection before answering`));
        }
      });
      upstream.on('error', (err: Error) => {
        clearTimeout(timer);
        if (settled) return;
        settled = true;
        if (isForbiddenDestination(err)) return reject(new OriginError('forbidden_destination', `origin ${origin.id}: ${err.message}`));
        const e = err instanceof OriginError ? err : new OriginError('origin_unreachable', `origin ${origin.id} (${addr.host}:${addr.port}) is unreachable: ${(err as NodeJS.ErrnoException).code ?? err.message}`);
        reject(e);
      });
      upstream.once('response', (response) => {
        clearTimeout(timer);
        settled = true;
        resolve(response);
      });
      upstream.end();
    });
  }

  private fail(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    if (err instanceof AppError) {
      if (err.statusCode >= 500) this.stats.failed++;
      this.json(res, err.statusCode, err.code, err.message);
      return;
    }
    this.stats.failed++;
    if (err instanceof OriginError) {
      this.log.warn({ path: req.url, err: err.message }, 'stream http: origin failed');
      this.json(res, err.code === 'origin_timeout' ? 504 : 502, err.code, err.message);
      return;
    }
    if (err instanceof StoreUnavailableError) {
      this.json(res, 503, 'store_unavailable', 'the state store is unreachable; retry');
      return;
    }
    this.log.warn({ path: req.url, err: err instanceof Error ? err.message : String(err) }, 'stream http: request failed');
    this.json(res, 500, 'internal', 'internal error');
  }

  private json(res: ServerResponse, status: number, code: string, message: string): void {
    const body = JSON.stringify({ error: code, message });
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
    res.end(body);
  }
}

function positive(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${name}: must be an integer >= 1`);
  return v;
}

/** The request's path and query for the origin, without the proxy's own `spbhid`. */
function originTarget(url: URL): string {
  const params = new URLSearchParams(url.search);
  params.delete(SPBHID_PARAM);
  const q = params.toString();
  return q ? `${url.pathname}?${q}` : url.pathname;
}

function responseHeaders(h: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(h)) if (value !== undefined && !HOP.has(name)) out[name] = value as string | string[];
  return out;
}

function hostHeader(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}
