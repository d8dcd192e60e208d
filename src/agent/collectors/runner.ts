import type { Logger } from 'pino';
import type { LoadSnapshot } from '../types.js';
import type { Collector, SourceTiming } from './collector.js';

/**
 * Runs each collector on its own interval with its own timeout, keeps its last good reading and
 * counts its consecutive failures; a source is `failing` from its N-th failure in a row until it
 * answers again. Readings are merged metric by metric taking the largest (two sources reporting
 * `cpu` → the busier one decides). Nothing here blocks a reader: `load()` and `failing()` return
 * what is known now.
 */
interface Entry {
  collector: Collector;
  timing: SourceTiming;
  last: LoadSnapshot | undefined;
  failures: number;
  timer: NodeJS.Timeout | undefined;
  first: Promise<void>;
}

export class CollectorRunner {
  private readonly entries: Entry[];
  private stopped = false;

  constructor(
    sources: { collector: Collector; timing: SourceTiming }[],
    private readonly logger?: Logger,
  ) {
    this.entries = sources.map((s) => ({ ...s, last: undefined, failures: 0, timer: undefined, first: Promise.resolve() }));
  }

  /** Starts every loop; resolves when each source has answered or failed once. */
  start(): Promise<void> {
    for (const e of this.entries) e.first = this.tick(e);
    return Promise.all(this.entries.map((e) => e.first)).then(() => undefined);
  }

  private async tick(e: Entry): Promise<void> {
    if (this.stopped) return;
    try {
      const load = await e.collector.collect(AbortSignal.timeout(e.timing.timeoutMs));
      if (e.failures >= e.timing.failures) this.logger?.info({ source: e.collector.name }, 'load source answers again');
      e.last = load;
      e.failures = 0;
    } catch (err) {
      e.failures++;
      const message = (err as Error).name === 'TimeoutError' ? `no answer within ${e.timing.timeoutMs} ms` : (err as Error).message;
      if (e.failures === e.timing.failures) this.logger?.warn({ source: e.collector.name, failures: e.failures, err: message }, 'load source failing');
      else this.logger?.debug({ source: e.collector.name, failures: e.failures, err: message }, 'load source failed');
    }
    if (!this.stopped) {
      e.timer = setTimeout(() => void this.tick(e), e.timing.intervalMs);
      e.timer.unref();
    }
  }

  /** The merged last readings. */
  load(): LoadSnapshot {
    const out: LoadSnapshot = {};
    for (const e of this.entries) {
      for (const [k, v] of Object.entries(e.last ?? {})) {
        if (v === undefined || !Number.isFinite(v)) continue;
        const cur = out[k];
        out[k] = cur === undefined ? v : Math.max(cur, v);
      }
    }
    return out;
  }

  /** Sources that failed N times in a row. */
  failing(): string[] {
    return this.entries.filter((e) => e.failures >= e.timing.failures).map((e) => e.collector.name);
  }

  names(): string[] {
    return this.entries.map((e) => e.collector.name);
  }

  stop(): void {
    this.stopped = true;
    for (const e of this.entries) clearTimeout(e.timer);
  }
}
