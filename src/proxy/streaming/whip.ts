/**
 * The WebRTC signalling proxy (SRS proxy's PROXY_HTTP_API, seed 003): WHIP publish and WHEP play,
 * in front of the origins' HTTP APIs.
 *
 * - `POST /rtc/v1/whip/?app=A&stream=S` (publish) and `POST /rtc/v1/whep/?app=A&stream=S` (play),
 *   body an SDP offer (`application/sdp`, at most `maxBodyBytes`): the stream key is
 *   `vhost(?vhost= or Host)/app/stream`; its origin (`locate(key, 'publish'|'play')`) gets the
 *   offer at the same path and query on its API port (first `api` listen entry); the origin's
 *   answer is indexed by its ICE ufrag (`indexRtc`, so every instance's UDP proxy can route the
 *   session), its candidates are rewritten to Switchboard's WebRTC UDP port (sdp.ts), and the client
 *   gets 201, the rewritten answer and a Location on Switchboard.
 * - `DELETE <Location>` (`/rtc/v1/whip/resource/<ufrag>/<origin resource>`): forwarded to the
 *   origin's own resource (the Location it answered, a path on its API port), then the session is
 *   forgotten here.
 *
 * {@link WhipProxy.resolveUfrag} is the {@link UfragResolver} of the UDP proxy: the session's
 * stream by ufrag (`streamByUfrag`, shared through the store, renewed on use) and the origin's
 * WebRTC UDP address (first `rtc` listen entry; its host if it names one, else the origin's host),
 * from this instance's memory when it answered the offer, else from the stream's origin.
 *
 * Errors are JSON `{error, message, field?}`: 400 naming the field (app, stream, content-type,
 * body), 404 unknown path or resource, AppError statuses from `locate` (503 `origin_unavailable`,
 * `no_origin`), 502 origin unreachable, refusing (5xx) or answering no SDP, 504 origin too slow.
 */
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request, type Dispatcher } from 'undici';
import type { Server } from '../../core/model.js';
import { AppError } from '../../errors.js';
import { originListen } from '../../pools/origins/srs.js';
import { hasControl, streamKey } from '../../pools/origins/stream-key.js';
import type { LocateMode, StreamService } from '../../pools/origins/streams.js';
import { StoreUnavailableError } from '../../store/store.js';
import { iceUfrags, looksLikeSdp, rewriteCandidates } from './sdp.js';
import type { UdpAddress } from './udp.js';

/** The subset of a pino logger the proxy uses. */
export interface WhipProxyLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

export interface WhipProxyOptions {
  streams: Pick<StreamService, 'locate' | 'indexRtc' | 'streamByUfrag' | 'servingOrigin'>;
  /** The address clients reach Switchboard's WebRTC UDP port at, written into answers' candidates. */
  publicHost: string;
  /** Switchboard's WebRTC UDP port (the RtcUdpProxy's, PROXY_WEBRTC_SERVER) written into answers. */
  udpPort: number;
  /** Listen address; default 0.0.0.0. */
  host?: string;
  /** Listen port (SRS proxy's PROXY_HTTP_API); default 11985, 0 for any free port. */
  port?: number;
  logger?: WhipProxyLogger;
  /** The whole origin exchange (connect, answer); default 10 000 ms. */
  timeoutMs?: number;
  /** Largest SDP offer accepted; default 64 KiB. */
  maxBodyBytes?: number;
  /** How long this instance remembers a session's origin addresses; default 120 000 ms (SRS). */
  sessionTtlMs?: number;
  /** Most sessions remembered in memory (oldest dropped first; the store index still routes them); default 100 000. */
  maxSessions?: number;
  /** undici dispatcher for origin requests (e.g. the network policy's agent); default undici's global one. */
  dispatcher?: Dispatcher;
}

export interface WhipProxyStats {
  offers: number;
  answered: number;
  refused: number;
  failed: number;
  deleted: number;
}

interface RtcSession {
  key: string;
  /** Origin WebRTC UDP address. */
  rtc: UdpAddress;
  /** Origin API base URL (`http://host:port`). */
  api: string;
  expires: number;
}

const noop = (): void => {};
const silent: WhipProxyLogger = { info: noop, warn: noop, debug: noop };

const PATHS: Record<string, LocateMode> = { '/rtc/v1/whip/': 'publish', '/rtc/v1/whep/': 'play' };
const RESOURCE = /^\/rtc\/v1\/(whip|whep)\/resource\/([^/?#]+)\/([A-Za-z0-9_-]+)$/;
const MAX_LOCATION = 2048;

class ProxyFailure extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

const badRequest = (field: string, message: string) => new ProxyFailure(400, 'bad_request', message, field);

/** An origin's API base URL and WebRTC UDP address from its registered endpoints; undefined when it lists none. */
export function originAddresses(server: Pick<Server, 'endpoints'>): { api?: string; rtc?: UdpAddress } {
  const out: { api?: string; rtc?: UdpAddress } = {};
  const api = originListen(server, 'api');
  if (api) out.api = `http://${api.host.includes(':') ? `[${api.host}]` : api.host}:${api.port}`;
  const rtc = originListen(server, 'rtc');
  if (rtc) out.rtc = rtc;
  return out;
}

export class WhipProxy {
  private readonly server: HttpServer;
  private readonly log: WhipProxyLogger;
  private readonly timeoutMs: number;
  private readonly maxBodyBytes: number;
  private readonly sessionTtlMs: number;
  private readonly maxSessions: number;
  /** answer ufrag → session; a Map keeps insertion order, so the first entries are the oldest. */
  private readonly sessions = new Map<string, RtcSession>();
  readonly stats: WhipProxyStats = { offers: 0, answered: 0, refused: 0, failed: 0, deleted: 0 };

  constructor(private readonly opts: WhipProxyOptions) {
    this.log = opts.logger ?? silent;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.maxBodyBytes = opts.maxBodyBytes ?? 64 * 1024;
    this.sessionTtlMs = opts.sessionTtlMs ?? 120_000;
    this.maxSessions = opts.maxSessions ?? 100_000;
    // Checked once here: every answer is rewritten with them.
    rewriteCandidates('', { host: opts.publicHost, port: opts.udpPort });
    this.server = createServer({ headersTimeout: 10_000, requestTimeout: 30_000, keepAliveTimeout: 5_000, maxHeaderSize: 16 * 1024 }, (req, res) => {
      this.handle(req, res).catch((err: unknown) => this.fail(req, res, err));
    });
    this.server.on('clientError', (_err, socket) => socket.destroy());
    this.server.on('error', (err) => this.log.warn({ err: err.message }, 'whip proxy listener error'));
  }

  /** Starts listening; resolves with the bound address. */
  listen(): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen(this.opts.port ?? 11985, this.opts.host ?? '0.0.0.0', () => {
        this.server.off('error', onError);
        const a = this.server.address() as AddressInfo;
        this.log.info({ host: a.address, port: a.port }, 'whip proxy listening');
        resolve({ host: a.address, port: a.port });
      });
    });
  }

  /** The bound port (after listen). */
  get port(): number {
    return (this.server.address() as AddressInfo | null)?.port ?? 0;
  }

  /** Stops listening and drops open connections. */
  async close(): Promise<void> {
    const done = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    if (this.server.listening) await done;
  }

  /**
   * The origin WebRTC UDP address of a session by its answer ufrag (the UDP proxy's resolver):
   * undefined when no live session has that ufrag.
   */
  readonly resolveUfrag = async (ufrag: string): Promise<UdpAddress | undefined> => {
    let key: string | undefined;
    try {
      key = await this.opts.streams.streamByUfrag(ufrag); // renews the shared index
    } catch (err) {
      if (err instanceof AppError) return undefined; // not a valid ufrag
      throw err;
    }
    if (key === undefined) return undefined;
    const local = this.sessions.get(ufrag);
    if (local && local.key === key) {
      local.expires = Date.now() + this.sessionTtlMs;
      return local.rtc;
    }
    // Answered by another instance: the origin serving the stream now, read from the shared
    // mappings. Nothing is mapped here: a UDP packet must never place a stream, and a stream
    // whose origin is gone has no session to continue (the client offers again).
    const origin = this.opts.streams.servingOrigin(key);
    return origin ? originAddresses(origin).rtc : undefined;
  };

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://switchboard.invalid');
    } catch {
      throw badRequest('path', 'the request target is not a valid path');
    }
    if (req.method === 'OPTIONS') {
      res.writeHead(204, { allow: 'POST, DELETE, OPTIONS', 'access-control-allow-origin': '*', 'access-control-allow-methods': 'POST, DELETE, OPTIONS', 'access-control-allow-headers': 'content-type, authorization', 'access-control-expose-headers': 'location' });
      res.end();
      return;
    }
    const mode = PATHS[url.pathname];
    if (mode) {
      if (req.method !== 'POST') throw new ProxyFailure(405, 'method_not_allowed', `${url.pathname} takes POST with an SDP offer`);
      return this.offer(req, res, url, mode);
    }
    const resource = RESOURCE.exec(url.pathname);
    if (resource) {
      if (req.method !== 'DELETE') throw new ProxyFailure(405, 'method_not_allowed', 'a WHIP/WHEP resource takes DELETE');
      return this.remove(req, res, decodeURIComponent(resource[2]!), resource[3]!);
    }
    throw new ProxyFailure(404, 'not_found', 'no such endpoint: POST /rtc/v1/whip/?app=&stream= (publish) or /rtc/v1/whep/?app=&stream= (play)');
  }

  private async offer(req: IncomingMessage, res: ServerResponse, url: URL, mode: LocateMode): Promise<void> {
    this.stats.offers++;
    const app = url.searchParams.get('app');
    const stream = url.searchParams.get('stream');
    if (!app) throw badRequest('app', 'app is required: ?app=live&stream=name');
    if (!stream) throw badRequest('stream', 'stream is required: ?app=live&stream=name');
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/sdp') throw badRequest('content-type', 'content-type must be application/sdp');
    const offer = await this.readBody(req);
    if (!looksLikeSdp(offer)) throw badRequest('body', 'body must be an SDP offer (v=0 and at least one m= line)');
    if (iceUfrags(offer).length === 0) throw badRequest('body', 'the SDP offer has no a=ice-ufrag');
    const key = streamKey(url.searchParams.get('vhost') ?? req.headers.host, app, stream);
    const origin = await this.opts.streams.locate(key, mode);
    const { api, rtc } = originAddresses(origin);
    if (!api) throw new ProxyFailure(502, 'origin_no_api', `origin ${origin.id} registered no HTTP API endpoint (api)`);
    if (!rtc) throw new ProxyFailure(502, 'origin_no_rtc', `origin ${origin.id} registered no WebRTC endpoint (rtc)`);

    const headers: Record<string, string> = { 'content-type': 'application/sdp', accept: 'application/sdp' };
    if (typeof req.headers.authorization === 'string') headers.authorization = req.headers.authorization;
    const answer = await this.originRequest(origin.id, `${api}${url.pathname}${url.search}`, 'POST', headers, offer);
    if (answer.status >= 400 && answer.status < 500) {
      // The origin's refusal (a bad offer, auth): the client's to see.
      this.stats.refused++;
      res.writeHead(answer.status, { 'content-type': answer.contentType ?? 'text/plain', 'cache-control': 'no-store' });
      res.end(answer.body);
      return;
    }
    if (answer.status < 200 || answer.status >= 300) throw new ProxyFailure(502, 'origin_error', `origin ${origin.id} answered HTTP ${answer.status}`);
    const sdp = answer.body.toString('utf8');
    const ufrags = looksLikeSdp(sdp) ? iceUfrags(sdp) : [];
    if (ufrags.length === 0) throw new ProxyFailure(502, 'origin_bad_answer', `origin ${origin.id} answered no SDP with an a=ice-ufrag`);
    for (const ufrag of ufrags) {
      if (ufrag.length > 256 || hasControl(ufrag) || ufrag.includes('/')) throw new ProxyFailure(502, 'origin_bad_answer', `origin ${origin.id} answered an unusable ice-ufrag`);
    }
    for (const ufrag of ufrags) await this.opts.streams.indexRtc(key, ufrag);
    for (const ufrag of ufrags) this.remember(ufrag, { key, rtc, api, expires: Date.now() + this.sessionTtlMs });

    const rewritten = rewriteCandidates(sdp, { host: this.opts.publicHost, port: this.opts.udpPort });
    const kind = mode === 'publish' ? 'whip' : 'whep';
    const originLocation = this.originResource(answer.location, api, url);
    const location = `/rtc/v1/${kind}/resource/${encodeURIComponent(ufrags[0]!)}/${Buffer.from(originLocation).toString('base64url')}`;
    this.stats.answered++;
    this.log.debug({ stream: key, origin: origin.id, mode, ufrag: ufrags[0] }, 'webrtc session answered');
    res.writeHead(201, { 'content-type': 'application/sdp', location, 'cache-control': 'no-store', 'access-control-allow-origin': '*', 'access-control-expose-headers': 'location' });
    res.end(rewritten);
  }

  /**
   * The origin's resource as a path on its API: its Location (relative, or absolute on its API
   * address), else the offer's own path and query (SRS accepts `?action=delete` there).
   */
  private originResource(location: string | undefined, api: string, offerUrl: URL): string {
    if (location && location.length <= MAX_LOCATION) {
      try {
        const u = new URL(location, api);
        if (u.origin === new URL(api).origin && u.pathname.startsWith('/')) return u.pathname + u.search;
      } catch {
        // fall through
      }
    }
    return offerUrl.pathname + offerUrl.search;
  }

  private async remove(req: IncomingMessage, res: ServerResponse, ufrag: string, encoded: string): Promise<void> {
    const path = Buffer.from(encoded, 'base64url').toString('utf8');
    // Only the origin's WebRTC resources: never another of its API's endpoints.
    if (!path.startsWith('/rtc/v1/') || path.length > MAX_LOCATION || hasControl(path)) throw new ProxyFailure(404, 'not_found', 'no such WebRTC resource');
    let api = this.sessions.get(ufrag)?.api;
    if (!api) {
      let key: string | undefined;
      try {
        key = await this.opts.streams.streamByUfrag(ufrag);
      } catch (err) {
        if (err instanceof AppError) throw new ProxyFailure(404, 'not_found', 'no such WebRTC resource');
        throw err;
      }
      if (key === undefined) throw new ProxyFailure(404, 'not_found', 'no such WebRTC session (ended or expired)');
      api = originAddresses(await this.opts.streams.locate(key, 'play')).api;
      if (!api) throw new ProxyFailure(502, 'origin_no_api', 'the session origin registered no HTTP API endpoint (api)');
    }
    const headers: Record<string, string> = {};
    if (typeof req.headers.authorization === 'string') headers.authorization = req.headers.authorization;
    const answer = await this.originRequest('session', `${api}${path}`, 'DELETE', headers);
    this.sessions.delete(ufrag);
    this.stats.deleted++;
    if (answer.status >= 500) throw new ProxyFailure(502, 'origin_error', `origin answered HTTP ${answer.status}`);
    res.writeHead(answer.status, { 'content-type': answer.contentType ?? 'text/plain', 'cache-control': 'no-store' });
    res.end(answer.body);
  }

  private remember(ufrag: string, session: RtcSession): void {
    this.sessions.delete(ufrag);
    this.sessions.set(ufrag, session);
    const now = Date.now();
    for (const [k, s] of this.sessions) {
      if (this.sessions.size <= this.maxSessions && s.expires > now) break;
      this.sessions.delete(k);
    }
  }

  private async originRequest(
    originId: string,
    url: string,
    method: 'POST' | 'DELETE',
    headers: Record<string, string>,
    body?: string,
  ): Promise<{ status: number; body: Buffer; contentType?: string; location?: string }> {
    try {
      const res = await request(url, {
        method,
        headers,
        body,
        signal: AbortSignal.timeout(this.timeoutMs),
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
        ...(this.opts.dispatcher ? { dispatcher: this.opts.dispatcher } : {}),
      });
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body) {
        size += (chunk as Buffer).length;
        if (size > 1024 * 1024) {
          res.body.destroy();
          throw new ProxyFailure(502, 'origin_bad_answer', `origin ${originId} answered more than 1 MiB`);
        }
        chunks.push(chunk as Buffer);
      }
      const ct = res.headers['content-type'];
      const loc = res.headers.location;
      const out: { status: number; body: Buffer; contentType?: string; location?: string } = { status: res.statusCode, body: Buffer.concat(chunks) };
      if (typeof ct === 'string') out.contentType = ct;
      if (typeof loc === 'string') out.location = loc;
      return out;
    } catch (err) {
      if (err instanceof ProxyFailure) throw err;
      const e = err as Error & { code?: string };
      if (e.name === 'TimeoutError' || e.name === 'AbortError' || e.code === 'UND_ERR_HEADERS_TIMEOUT' || e.code === 'UND_ERR_BODY_TIMEOUT') {
        throw new ProxyFailure(504, 'origin_timeout', `origin ${originId} did not answer within ${this.timeoutMs} ms`);
      }
      throw new ProxyFailure(502, 'origin_unreachable', `origin ${originId} is unreachable: ${e.code ?? e.message}`);
    }
  }

  private readBody(req: IncomingMessage): Promise<string> {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > this.maxBodyBytes) {
      return Promise.reject(badRequest('body', `the SDP offer must be at most ${this.maxBodyBytes} bytes`));
    }
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > this.maxBodyBytes) {
          req.removeAllListeners('data');
          req.resume();
          reject(badRequest('body', `the SDP offer must be at most ${this.maxBodyBytes} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      req.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      req.once('error', reject);
    });
  }

  private fail(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    let status = 500;
    let code = 'internal';
    let message = 'internal error';
    let field: string | undefined;
    if (err instanceof ProxyFailure) {
      ({ statusCode: status, code, message, field } = err);
    } else if (err instanceof AppError) {
      status = err.statusCode;
      code = err.code;
      message = err.message;
      if (typeof err.details.field === 'string') field = err.details.field;
    } else if (err instanceof StoreUnavailableError) {
      status = 503;
      code = 'store_unavailable';
      message = 'the state store is unreachable; retry';
    } else {
      this.log.warn({ path: req.url, err: err instanceof Error ? err.message : String(err) }, 'whip proxy: request failed');
    }
    if (status >= 500) this.stats.failed++;
    else this.stats.refused++;
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body = JSON.stringify(field === undefined ? { error: code, message } : { error: code, message, field });
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', 'access-control-allow-origin': '*', ...(status === 400 ? { connection: 'close' } : {}) });
    res.end(body);
  }
}
