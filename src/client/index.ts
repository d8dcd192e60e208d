/**
 * `switchboard/client`: a typed client for media servers (mediasoup, coturn, ...) that register
 * themselves with Switchboard, report their load, drain and deregister.
 *
 *   const sb = new SwitchboardClient({ url: 'http://switchboard:3001', serverId: 'sfu-1', token });
 *   await sb.register({ serviceUrl: 'http://10.0.0.5:4443', workers: 4 });
 *   await sb.heartbeat({ consumers: 120 });
 *
 * Every call is retried with exponential backoff and jitter on connection errors, timeouts, 5xx
 * and 429 (a `Retry-After` is honoured), never on other 4xx; each attempt has a timeout. Failures
 * are `SwitchboardError`s carrying the HTTP status, Switchboard's `error` code and `field`; a
 * heartbeat for a server Switchboard does not know is an `UnknownServerError`: register again.
 */
import { Pool as UndiciPool, type Dispatcher } from 'undici';
import { backoffDelay, parseRetryAfter, RETRYABLE_ERROR_CODES, retryableStatus } from './backoff.js';
import { SwitchboardError, UnknownServerError, type SwitchboardErrorInit } from './errors.js';
import type { Load, Message, Pool, RegisterResult, Registration, ServerView } from './types.js';

export * from './errors.js';
export * from './types.js';
export { backoffDelay, parseRetryAfter } from './backoff.js';

export interface RetryEvent {
  method: string;
  path: string;
  /** The attempt that failed (1 for the first). */
  attempt: number;
  /** Wait before the next attempt. */
  delayMs: number;
  error: SwitchboardError;
}

export interface SwitchboardClientOptions<P extends Pool = 'rooms'> {
  /** Switchboard's base URL, e.g. `http://switchboard:3001` (a path prefix is kept). */
  url: string;
  /** This server's identity in Switchboard. */
  serverId: string;
  /** `rooms` (default: SFUs, seed 000's routes) or `turn`. */
  pool?: P;
  /** Sent as `Authorization: Bearer <token>` (Switchboard's AUTH_TOKEN). */
  token?: string;
  /** Bound on each attempt: connect, headers and body (default 5000 ms). */
  timeoutMs?: number;
  /** Retries after the first attempt (default 4). */
  retries?: number;
  /** First backoff (default 200 ms); doubles each retry, with jitter. */
  minRetryDelayMs?: number;
  /** Longest backoff (default 5000 ms). */
  maxRetryDelayMs?: number;
  /** A `Retry-After` longer than this is cut to it (default 30000 ms). */
  maxRetryAfterMs?: number;
  /** Your own undici dispatcher (Agent, Pool, ...); the client then does not close it. */
  dispatcher?: Dispatcher;
  /** Called before each retry (for logging). */
  onRetry?: (event: RetryEvent) => void;
  userAgent?: string;
}

/** Per-call overrides. */
export interface CallOptions {
  timeoutMs?: number;
  retries?: number;
  /** Aborts the call, retries and waits included. */
  signal?: AbortSignal;
  /**
   * Whether repeating the call after an unclear failure is harmless. Default true, but false for
   * register and roomClosed: a register retried after its answer was lost replaces the
   * registration again (releasing rooms placed meanwhile), and a room-closed retried after the
   * room id was placed again would close the new room. Those are retried only when Switchboard
   * certainly did not act (connection refused, name not resolved, 429, 503 store_unavailable).
   */
  idempotent?: boolean;
}

/** Failures after which Switchboard certainly did not act on the request. */
function notActedOn(error: SwitchboardError): boolean {
  if (error.kind === 'network') return ['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT'].includes(error.code);
  return error.status === 429 || (error.status === 503 && error.code === 'store_unavailable');
}

type Method = 'GET' | 'POST' | 'DELETE';

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** A thrown error without its own code: the underlying cause's (undici wraps some). */
function causeCode(err: unknown): string | undefined {
  return errorCode(err) ?? errorCode((err as { cause?: unknown } | null)?.cause);
}

export class SwitchboardClient<P extends Pool = 'rooms'> {
  readonly serverId: string;
  readonly pool: P;
  private readonly origin: string;
  private readonly basePath: string;
  private readonly dispatcher: Dispatcher;
  private readonly ownsDispatcher: boolean;
  private readonly headers: Record<string, string>;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly backoff: { minDelayMs: number; maxDelayMs: number };
  private readonly maxRetryAfterMs: number;
  private readonly onRetry: ((event: RetryEvent) => void) | undefined;

  constructor(options: SwitchboardClientOptions<P>) {
    const url = new URL(options.url);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`url must be http(s): ${options.url}`);
    if (!options.serverId) throw new TypeError('serverId is required');
    this.serverId = options.serverId;
    this.pool = (options.pool ?? 'rooms') as P;
    this.origin = url.origin;
    this.basePath = url.pathname.replace(/\/+$/, '');
    this.ownsDispatcher = options.dispatcher === undefined;
    this.dispatcher = options.dispatcher ?? new UndiciPool(this.origin, { connections: 4, keepAliveTimeout: 4_000, connect: { timeout: options.timeoutMs ?? 5_000 } });
    this.headers = {
      accept: 'application/json',
      'user-agent': options.userAgent ?? 'switchboard-client',
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
    };
    this.timeoutMs = options.timeoutMs ?? 5_000;
    this.retries = Math.max(0, options.retries ?? 4);
    this.backoff = { minDelayMs: options.minRetryDelayMs ?? 200, maxDelayMs: options.maxRetryDelayMs ?? 5_000 };
    this.maxRetryAfterMs = options.maxRetryAfterMs ?? 30_000;
    this.onRetry = options.onRetry;
  }

  private get id(): string {
    return encodeURIComponent(this.serverId);
  }

  private roomsOnly(what: string): void {
    if (this.pool !== 'rooms') throw new TypeError(`${what} is for the rooms pool; this client is for the ${this.pool} pool`);
  }

  /** Whether this client is for the rooms pool (narrows the type, so drain() & co. are callable). */
  isRooms(): this is SwitchboardClient<'rooms'> {
    return this.pool === 'rooms';
  }

  /**
   * Registers this server (`POST /register`, or `POST /turn/register`). Registering again replaces
   * the earlier registration: for the rooms pool, rooms Switchboard placed here are released (a
   * restarted media server has lost them).
   */
  register(registration: Registration<P>, options?: CallOptions): Promise<RegisterResult<P>> {
    const path = this.pool === 'turn' ? '/turn/register' : '/register';
    return this.request<RegisterResult<P>>('POST', path, { ...registration, serverId: this.serverId }, { idempotent: false, ...options });
  }

  /**
   * Reports this server alive with its load (`consumers` for rooms, `allocations` for TURN).
   * Throws `UnknownServerError` when Switchboard does not know the server: register again.
   */
  heartbeat(load?: Load, options?: CallOptions): Promise<ServerView> {
    const path = this.pool === 'turn' ? '/turn/heartbeat' : '/heartbeat';
    return this.request<ServerView>('POST', path, { serverId: this.serverId, ...(load ? { load } : {}) }, options);
  }

  /** Drain (rooms pool): no new rooms here; existing rooms stay. */
  drain(this: SwitchboardClient<'rooms'>, options?: CallOptions): Promise<ServerView> {
    this.roomsOnly('drain');
    return this.request<ServerView>('POST', `/servers/${this.id}/drain`, undefined, options);
  }

  /** Undrain (rooms pool): the server takes new rooms again. */
  undrain(this: SwitchboardClient<'rooms'>, options?: CallOptions): Promise<ServerView> {
    this.roomsOnly('undrain');
    return this.request<ServerView>('DELETE', `/servers/${this.id}/drain`, undefined, options);
  }

  /** Removes this server from Switchboard; for rooms, rooms still placed here are released. */
  deregister(options?: CallOptions): Promise<ServerView> {
    const path = this.pool === 'turn' ? `/turn/servers/${this.id}` : `/servers/${this.id}`;
    return this.request<ServerView>('DELETE', path, undefined, options);
  }

  /** A room on this server closed (rooms pool, seed 000's `POST /room-closed`): its consumers are freed. */
  roomClosed(this: SwitchboardClient<'rooms'>, roomId: string, options?: CallOptions): Promise<Message> {
    this.roomsOnly('roomClosed');
    return this.request<Message>('POST', '/room-closed', { serverId: this.serverId, roomId }, { idempotent: false, ...options });
  }

  /** This server as Switchboard sees it; undefined when it is not registered. */
  async getServer(options?: CallOptions): Promise<ServerView | undefined> {
    if (this.pool === 'turn') {
      const { servers } = await this.request<{ servers: ServerView[] }>('GET', '/turn/servers', undefined, options);
      return servers.find((s) => s.serverId === this.serverId);
    }
    try {
      return await this.request<ServerView>('GET', `/servers/${this.id}`, undefined, options);
    } catch (err) {
      if (err instanceof SwitchboardError && err.status === 404 && err.code === 'not_found' && err.field === 'id') return undefined;
      throw err;
    }
  }

  /** Closes the client's connections (not a dispatcher you passed in). */
  async close(): Promise<void> {
    if (this.ownsDispatcher) await this.dispatcher.close();
  }

  /** One JSON call to Switchboard with the client's retries, timeout and token. */
  async request<T>(method: Method, path: string, body?: unknown, options: CallOptions = {}): Promise<T> {
    const retries = Math.max(0, options.retries ?? this.retries);
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const fullPath = this.basePath + path;
    for (let attempt = 1; ; attempt++) {
      const failure = await this.attempt<T>(method, fullPath, payload, timeoutMs, attempt, options.signal);
      if (failure.ok) return failure.value;
      const { error, retryAfterMs } = failure;
      if (!failure.retryable || attempt > retries) throw error;
      if (options.idempotent === false && !notActedOn(error)) throw error;
      const delayMs = retryAfterMs !== undefined ? Math.min(retryAfterMs, this.maxRetryAfterMs) : backoffDelay(attempt - 1, this.backoff);
      this.onRetry?.({ method, path: fullPath, attempt, delayMs, error });
      try {
        await sleep(delayMs, options.signal);
      } catch (reason) {
        throw new SwitchboardError(`${method} ${fullPath}: aborted`, { kind: 'aborted', code: 'aborted', method, path: fullPath, attempts: attempt, cause: reason });
      }
    }
  }

  private async attempt<T>(
    method: Method,
    path: string,
    payload: string | undefined,
    timeoutMs: number,
    attempt: number,
    callerSignal: AbortSignal | undefined,
  ): Promise<{ ok: true; value: T } | { ok: false; retryable: boolean; error: SwitchboardError; retryAfterMs?: number }> {
    const base = { method, path, attempts: attempt };
    if (callerSignal?.aborted) {
      return { ok: false, retryable: false, error: new SwitchboardError(`${method} ${path}: aborted`, { ...base, kind: 'aborted', code: 'aborted', cause: callerSignal.reason }) };
    }
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = callerSignal ? AbortSignal.any([timeout, callerSignal]) : timeout;
    let status: number;
    let text: string;
    let retryAfter: string | string[] | undefined;
    try {
      const res = await this.dispatcher.request({
        origin: this.origin,
        path,
        method,
        // No content-type without a body: Fastify refuses an empty JSON body.
        ...(payload !== undefined ? { headers: { ...this.headers, 'content-type': 'application/json' }, body: payload } : { headers: this.headers }),
        signal,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      status = res.statusCode;
      retryAfter = res.headers['retry-after'];
      text = await res.body.text();
    } catch (err) {
      if (callerSignal?.aborted) {
        return { ok: false, retryable: false, error: new SwitchboardError(`${method} ${path}: aborted`, { ...base, kind: 'aborted', code: 'aborted', cause: err }) };
      }
      if (timeout.aborted) {
        return {
          ok: false,
          retryable: true,
          error: new SwitchboardError(`${method} ${path}: no answer within ${timeoutMs} ms`, { ...base, kind: 'timeout', code: 'timeout', cause: err }),
        };
      }
      const code = causeCode(err) ?? 'network_error';
      return {
        ok: false,
        retryable: RETRYABLE_ERROR_CODES.has(code),
        error: new SwitchboardError(`${method} ${path}: ${code} (${(err as Error).message})`, { ...base, kind: 'network', code, cause: err }),
      };
    }
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = text;
    }
    if (status >= 200 && status < 300) return { ok: true, value: parsed as T };
    const errorBody = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : {};
    const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
    const code = str(errorBody.error) ?? `http_${status}`;
    const init: SwitchboardErrorInit = { ...base, kind: 'http', status, code, body: parsed };
    const field = str(errorBody.field);
    const reason = str(errorBody.reason);
    if (field !== undefined) init.field = field;
    if (reason !== undefined) init.reason = reason;
    const message = `${method} ${path} → ${status} ${code}: ${str(errorBody.message) ?? (typeof parsed === 'string' ? parsed.slice(0, 200) : '')}`;
    const error = code === 'unknown_server' ? new UnknownServerError(message, init) : new SwitchboardError(message, init);
    const retryAfterMs = parseRetryAfter(retryAfter);
    return { ok: false, retryable: retryableStatus(status), error, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) };
  }
}
