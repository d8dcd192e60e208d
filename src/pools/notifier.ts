import type { Logger } from 'pino';
import { interceptors, request, type Dispatcher } from 'undici';
import { RETRYABLE_ERROR_CODES } from '../retryable.js';
import { NetworkPolicy } from '../security/network-policy.js';

export interface Notification {
  url: string;
  body: Record<string, unknown>;
}

export interface NotifierOptions {
  /** Per attempt: connect, and each wait for headers or body data. */
  timeoutMs: number;
  /** Attempts in all (default 3). */
  attempts?: number;
  /** Wait before the first retry; doubles each retry (default 500 ms). */
  backoffMs?: number;
  logger?: Logger;
  onResult?: (ok: boolean) => void;
  /** The SSRF guard on webhook connections (default: the default policy). */
  networkPolicy?: NetworkPolicy;
}

const HEADERS = { 'content-type': 'application/json', 'user-agent': 'switchboard' };
const RETRY_STATUS = Array.from({ length: 100 }, (_, i) => 500 + i);
/**
 * Delivers webhooks (room-lost, ...) to placement owners: POST JSON in the background, retried on
 * 5xx answers and connection errors with exponential backoff (undici's retry interceptor), given
 * up after `attempts`. A slow or dead receiver never holds up the caller. Connections go through
 * the network policy (no webhooks to link-local / metadata addresses, or outside
 * security.allowedNetworks); a refused destination is not retried.
 */
export class Notifier {
  private readonly inflight = new Set<Promise<void>>();
  private readonly agent: Dispatcher;
  private readonly dispatcher: Dispatcher;
  /** Upper bound of one delivery, all attempts and waits included. */
  private readonly deadlineMs: number;

  constructor(private readonly options: NotifierOptions) {
    const attempts = Math.max(1, options.attempts ?? 3);
    const backoff = options.backoffMs ?? 500;
    this.agent = (options.networkPolicy ?? new NetworkPolicy()).agent({
      connectTimeoutMs: options.timeoutMs,
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
      keepAliveTimeout: 4_000,
    });
    this.dispatcher = this.agent.compose(
      interceptors.retry({
        maxRetries: attempts - 1,
        minTimeout: backoff,
        timeoutFactor: 2,
        // A receiver's Retry-After is honoured up to the longest backoff, not beyond.
        maxTimeout: backoff * 2 ** Math.max(0, attempts - 2),
        methods: ['POST'],
        statusCodes: RETRY_STATUS,
        errorCodes: [...RETRYABLE_ERROR_CODES],
      }),
    );
    // Each phase of an attempt is bounded by timeoutMs; this bounds a receiver dripping its answer.
    this.deadlineMs = attempts * options.timeoutMs * 2 + backoff * 2 ** attempts;
  }

  send(n: Notification): void {
    const p = this.deliver(n).finally(() => this.inflight.delete(p));
    this.inflight.add(p);
  }

  /** Waits for deliveries under way (used at shutdown and in tests). */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.inflight]);
  }

  /** Waits for deliveries under way, then closes the kept-open connections. */
  async close(): Promise<void> {
    await this.drain();
    await this.agent.close().catch(() => undefined);
  }

  private async deliver(n: Notification): Promise<void> {
    try {
      const res = await request(n.url, {
        method: 'POST',
        headers: HEADERS,
        body: JSON.stringify(n.body),
        dispatcher: this.dispatcher,
        signal: AbortSignal.timeout(this.deadlineMs),
      });
      await res.body.dump();
      // A 5xx never gets here (retried, then thrown); 2xx-4xx are the receiver's final word.
      this.options.onResult?.(res.statusCode < 300);
    } catch (err) {
      const e = err as Error & { code?: string; statusCode?: number };
      this.options.logger?.warn({ url: n.url, err: e.code ?? e.name, status: e.statusCode, event: n.body.event }, 'notification not delivered');
      this.options.onResult?.(false);
    }
  }
}
