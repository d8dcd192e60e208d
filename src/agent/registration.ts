/**
 * Self-registration: the agent registers its media server with Switchboard (rooms or TURN pool),
 * heartbeats its load, and on drain() drains, waits for the server's rooms to end, then
 * deregisters. Built on the client SDK (src/client/).
 *
 * It survives Switchboard restarts and Redis flushes: a heartbeat answered `unknown_server` makes
 * it register again (and drain again when it was draining). While Switchboard cannot be reached it
 * keeps trying with backoff and logs once per outage, not once per attempt.
 */
import type { Logger } from 'pino';
import { backoffDelay } from '../client/backoff.js';
import {
  isUnknownServer,
  SwitchboardClient,
  SwitchboardError,
  type Load,
  type Registration,
  type RoomServerRegistration,
  type TurnServerRegistration,
} from '../client/index.js';
import type { LoadSnapshot, LoadSource } from './types.js';

export interface RegistrationOptions {
  /** Switchboard's base URL. */
  url: string;
  /** Switchboard's AUTH_TOKEN. */
  token?: string;
  pool: 'rooms' | 'turn';
  serverId: string;
  /** Rooms: the media server's API base URL (required for the rooms pool). */
  serviceUrl?: string;
  wsUrl?: string;
  /** Rooms: mediasoup workers (default 1); capacity = workers × 500 unless `capacity` is given. */
  workers?: number;
  capacity?: number;
  region?: string;
  labels?: Record<string, string>;
  healthPath?: string;
  /** TURN: the server's addresses and ports (host is required for the TURN pool). */
  turn?: { host: string; privateAddress?: string; port?: number; tlsPort?: number };
  /** Default 5000 ms. */
  heartbeatIntervalMs?: number;
  /** How long drain() waits for the server's rooms (TURN: allocations) to end; default 60000 ms. */
  drainTimeoutMs?: number;
  /**
   * The metric reported as the pool's capacity unit: `consumers` (rooms) or `allocations` (TURN)
   * is sent as the load snapshot's value of this key (default: the unit's own name).
   */
  loadKey?: string;
}

export interface Registrar {
  drain(): Promise<void>;
  stop(): Promise<void>;
}

const DEFAULT_INTERVAL_MS = 5_000;
const DEFAULT_DRAIN_TIMEOUT_MS = 60_000;
const MAX_LOAD_KEYS = 64;
const MAX_LOAD_VALUE = 1e12;

/** The capacity unit each pool counts: rooms `consumers`, TURN `allocations`. */
export const unitKey = (pool: 'rooms' | 'turn') => (pool === 'turn' ? 'allocations' : 'consumers');

/**
 * The heartbeat's `load` from a snapshot: the pool's unit (`consumers` / `allocations`) taken from
 * `loadKey`, then every other finite, non-negative metric (up to Switchboard's 64 keys, values
 * capped at 1e12) so operators see them under `reported`.
 */
export function heartbeatLoad(snapshot: LoadSnapshot, pool: 'rooms' | 'turn', loadKey?: string): Load {
  const unit = unitKey(pool);
  const usable = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;
  const load: Load = {};
  const unitValue = snapshot[loadKey ?? unit];
  if (usable(unitValue)) load[unit] = Math.min(unitValue, MAX_LOAD_VALUE);
  for (const [key, value] of Object.entries(snapshot)) {
    if (Object.keys(load).length >= MAX_LOAD_KEYS) break;
    if (key === unit || key.length === 0 || key.length > 64 || !usable(value)) continue;
    load[key] = Math.min(value, MAX_LOAD_VALUE);
  }
  return load;
}

function registrationBody(options: RegistrationOptions): Registration<'rooms' | 'turn'> {
  if (options.pool === 'turn') {
    if (!options.turn?.host) throw new TypeError('self-registration in the TURN pool needs turn.host');
    const { host, privateAddress, port, tlsPort } = options.turn;
    const body: TurnServerRegistration = { host };
    if (privateAddress !== undefined) body.privateAddress = privateAddress;
    if (port !== undefined) body.port = port;
    if (tlsPort !== undefined) body.tlsPort = tlsPort;
    if (options.region !== undefined) body.region = options.region;
    return body;
  }
  if (!options.serviceUrl) throw new TypeError('self-registration in the rooms pool needs serviceUrl');
  const body: RoomServerRegistration = { serviceUrl: options.serviceUrl, workers: options.workers ?? 1 };
  if (options.capacity !== undefined) body.capacity = options.capacity;
  if (options.region !== undefined) body.region = options.region;
  if (options.labels !== undefined) body.labels = options.labels;
  if (options.wsUrl !== undefined) body.wsUrl = options.wsUrl;
  if (options.healthPath !== undefined) body.healthPath = options.healthPath;
  return body;
}

/** What an outage is, for logging once per outage: unreachable, or a refusal by code. */
function outageKey(err: unknown): string {
  if (err instanceof SwitchboardError) return err.kind === 'http' ? `${err.status} ${err.code}` : 'unreachable';
  return 'error';
}

const errorFields = (err: unknown) =>
  err instanceof SwitchboardError ? { status: err.status, code: err.code, field: err.field, error: err.message } : { error: (err as Error)?.message ?? String(err) };

/**
 * Starts registering `options.serverId` with Switchboard and heartbeating `source`'s load.
 * Throws a TypeError at once when the options lack what the pool needs (serviceUrl, turn.host).
 */
export function startRegistration(options: RegistrationOptions, source: LoadSource, logger?: Logger): Registrar {
  const body = registrationBody(options);
  const pool = options.pool;
  const interval = Math.max(100, options.heartbeatIntervalMs ?? DEFAULT_INTERVAL_MS);
  const drainTimeoutMs = Math.max(0, options.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS);
  const log = logger?.child({ component: 'registration', pool, serverId: options.serverId });
  // Few quick retries per call: the loop below owns the longer backoff across an outage.
  const client = new SwitchboardClient<'rooms' | 'turn'>({
    url: options.url,
    serverId: options.serverId,
    pool,
    ...(options.token ? { token: options.token } : {}),
    timeoutMs: Math.min(5_000, Math.max(1_000, interval)),
    retries: 2,
    minRetryDelayMs: 100,
    maxRetryDelayMs: Math.min(2_000, interval),
    maxRetryAfterMs: Math.max(1_000, interval),
    onRetry: (e) => log?.debug({ attempt: e.attempt, delayMs: e.delayMs, ...errorFields(e.error) }, 'retrying a call to Switchboard'),
  });
  const rooms = client.isRooms() ? client : undefined;
  const abort = new AbortController();
  const signal = abort.signal;

  let registered = false;
  let draining = false;
  /** Heartbeats end (after deregistration, or stop()). */
  let done = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let outage: { key: string; since: number; attempts: number } | undefined;
  let drainPromise: Promise<void> | undefined;
  let stopPromise: Promise<void> | undefined;
  let closed: Promise<void> | undefined;
  const closeClient = () => (closed ??= client.close().catch(() => {}));

  const register = async () => {
    const wasRegistered = registered;
    await client.register(body, { signal });
    registered = true;
    if (draining && rooms) await rooms.drain({ signal });
    if (!wasRegistered) log?.info({ url: options.url, draining }, 'registered with Switchboard');
  };

  const heartbeat = async () => {
    const load = heartbeatLoad(source.state().load, pool, options.loadKey);
    try {
      await client.heartbeat(load, { signal });
    } catch (err) {
      if (!isUnknownServer(err)) throw err;
      // Switchboard restarted with an empty store, Redis was flushed, or an operator removed us.
      log?.warn('Switchboard does not know this server (restarted, or its store was flushed): registering again');
      registered = false;
      await register();
      await client.heartbeat(load, { signal });
    }
  };

  const failed = (err: unknown) => {
    const key = outageKey(err);
    if (!outage || outage.key !== key) {
      const level = key === 'unreachable' ? 'warn' : 'error';
      log?.[level]({ ...errorFields(err) }, key === 'unreachable' ? 'Switchboard unreachable; retrying with backoff' : 'Switchboard refused registration or heartbeat; retrying');
      outage = { key, since: outage?.since ?? Date.now(), attempts: 0 };
    }
    outage.attempts++;
  };

  const recovered = () => {
    if (!outage) return;
    log?.info({ downMs: Date.now() - outage.since, attempts: outage.attempts }, 'Switchboard reachable again');
    outage = undefined;
  };

  const tick = async () => {
    let next = interval;
    try {
      if (!registered) await register();
      await heartbeat();
      recovered();
    } catch (err) {
      if (done) return;
      failed(err);
      next = Math.min(interval, backoffDelay(outage!.attempts - 1, { minDelayMs: 250, maxDelayMs: Math.max(1_000, interval) }));
    }
    if (!done) timer = setTimeout(loop, next);
  };

  const loop = () => {
    timer = undefined;
    if (done) return;
    running = tick().finally(() => (running = undefined));
  };

  /** Ends heartbeats; waits for one under way. */
  const endHeartbeats = async () => {
    done = true;
    clearTimeout(timer);
    timer = undefined;
    await running;
  };

  const wait = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
    });

  /** Repeats `fn` until it succeeds, fails for good (4xx) or the deadline passes. */
  const persist = async <T>(what: string, deadline: number, fn: (signal: AbortSignal) => Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> => {
    let lastError: unknown;
    for (let attempt = 0; !signal.aborted; attempt++) {
      const remaining = deadline - Date.now();
      if (remaining <= 0 && attempt > 0) break;
      try {
        const bound = AbortSignal.any([signal, AbortSignal.timeout(Math.max(remaining, 1_000))]);
        return { ok: true, value: await fn(bound) };
      } catch (err) {
        lastError = err;
        if (err instanceof SwitchboardError && err.clientError) break;
        if (attempt === 0) log?.warn({ ...errorFields(err) }, `${what} failed; retrying until the drain deadline`);
      }
      await wait(Math.min(Math.max(deadline - Date.now(), 0), backoffDelay(attempt, { minDelayMs: 250, maxDelayMs: 2_000 })));
    }
    return { ok: false, error: lastError };
  };

  const doDrain = async () => {
    const started = Date.now();
    const deadline = started + drainTimeoutMs;
    draining = true;
    log?.info({ drainTimeoutMs }, 'draining');
    if (rooms) {
      const drained = await persist('drain', deadline, (s) => rooms.drain({ signal: s }));
      if (!drained.ok && !(drained.error instanceof SwitchboardError && drained.error.status === 404)) {
        log?.warn({ ...errorFields(drained.error) }, 'could not drain in Switchboard');
      }
      // Heartbeats go on while rooms end: the server stays alive in Switchboard's view.
      const poll = Math.min(1_000, interval);
      let open = drained.ok ? drained.value.placements : undefined;
      while (!signal.aborted && Date.now() < deadline && open !== 0) {
        await wait(Math.min(poll, Math.max(0, deadline - Date.now())));
        if (signal.aborted || Date.now() >= deadline) break;
        try {
          const view = await rooms.getServer({ signal: AbortSignal.any([signal, AbortSignal.timeout(Math.max(1_000, deadline - Date.now()))]) });
          open = view?.placements ?? 0;
        } catch {
          // Unreachable for now: keep waiting until the deadline.
        }
      }
      if (open === 0) log?.info({ waitedMs: Date.now() - started }, 'rooms ended');
      else if (!signal.aborted) log?.warn({ rooms: open, drainTimeoutMs }, 'rooms still open at the drain deadline; deregistering anyway');
      await endHeartbeats();
      await deregister(deadline);
    } else {
      // No drain in the TURN pool: leave it at once so no new client is sent here, then give
      // running allocations until the deadline to end.
      await endHeartbeats();
      await deregister(deadline);
      const unit = unitKey(pool);
      const allocations = () => heartbeatLoad(source.state().load, pool, options.loadKey)[unit];
      while (!signal.aborted && Date.now() < deadline && (allocations() ?? 0) > 0) await wait(Math.min(500, Math.max(0, deadline - Date.now())));
    }
    await closeClient();
  };

  const deregister = async (deadline: number) => {
    const result = await persist('deregister', Math.max(deadline, Date.now() + 5_000), (s) => client.deregister({ signal: s }));
    registered = false;
    if (result.ok) log?.info('deregistered from Switchboard');
    else if (result.error instanceof SwitchboardError && result.error.status === 404) log?.info('already deregistered');
    else log?.warn({ ...errorFields(result.error) }, 'could not deregister');
  };

  loop();

  return {
    drain: () => (drainPromise ??= doDrain()),
    stop: () =>
      (stopPromise ??= (async () => {
        abort.abort();
        await endHeartbeats();
        await drainPromise?.catch(() => {});
        await closeClient();
      })()),
  };
}
