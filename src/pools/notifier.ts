import type { Logger } from 'pino';
import { request } from 'undici';

export interface Notification {
  url: string;
  body: Record<string, unknown>;
}

/**
 * Delivers webhooks (room-lost, ...) to placement owners: POST JSON, a few retries with backoff,
 * in the background. A slow or dead receiver never holds up the caller.
 */
export class Notifier {
  private readonly inflight = new Set<Promise<void>>();

  constructor(
    private readonly options: { timeoutMs: number; attempts?: number; backoffMs?: number; logger?: Logger; onResult?: (ok: boolean) => void },
  ) {}

  send(n: Notification): void {
    const p = this.deliver(n).finally(() => this.inflight.delete(p));
    this.inflight.add(p);
  }

  /** Waits for deliveries under way (used at shutdown and in tests). */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.inflight]);
  }

  private async deliver(n: Notification): Promise<void> {
    const attempts = this.options.attempts ?? 3;
    const backoff = this.options.backoffMs ?? 500;
    for (let i = 1; i <= attempts; i++) {
      try {
        const res = await request(n.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'user-agent': 'switchboard' },
          body: JSON.stringify(n.body),
          signal: AbortSignal.timeout(this.options.timeoutMs),
        });
        await res.body.dump();
        if (res.statusCode < 500) {
          this.options.onResult?.(res.statusCode < 300);
          return;
        }
        throw new Error(`HTTP ${res.statusCode}`);
      } catch (err) {
        if (i === attempts) {
          this.options.logger?.warn({ url: n.url, err: (err as Error).message, event: n.body.event }, 'notification not delivered');
          this.options.onResult?.(false);
          return;
        }
        await new Promise((r) => setTimeout(r, backoff * 2 ** (i - 1)));
      }
    }
  }
}
