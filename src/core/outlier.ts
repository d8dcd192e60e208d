/**
 * Passive outlier ejection, as Envoy's outlier detection: the proxy reports each request's result
 * and a backend failing `consecutiveFailures` times in a row is taken out of rotation for a while,
 * without waiting for the active health check. Pure: the caller passes `now`.
 *
 * - Ejection time is baseEjectionMs × the number of times ejected, capped at maxEjectionMs.
 * - When it passes the backend is half-open: one trial request (`admits`). Its success brings the
 *   backend back in full; its failure ejects it again, for longer. Any result recorded while
 *   half-open counts as the trial's. A trial whose result is not recorded within baseEjectionMs
 *   (the request was never sent, or hangs) is presumed lost and another is allowed.
 * - The ejection count decays by one per baseEjectionMs without a failure once back in rotation
 *   (Envoy decrements its multiplier per clean interval), so a backend that failed once long ago
 *   is not punished like a flapping one.
 * - maxEjectionPercent bounds the share of totalBackends ejected or half-open at once; at least one
 *   may be ejected when there are two or more (as Envoy), never the only backend. 0 disables
 *   ejection, as does consecutiveFailures 0.
 * - Results arriving while a backend is ejected (requests sent before it was) change nothing.
 */
export interface OutlierOptions {
  /** Failures in a row that eject a backend (5); 0 disables ejection. */
  consecutiveFailures: number;
  /** First ejection time, and the unit of later ones and of the count's decay (30 s). */
  baseEjectionMs: number;
  /** Longest ejection (300 s). */
  maxEjectionMs: number;
  /** Most of the backends ejected at once, in percent (50). */
  maxEjectionPercent: number;
  /** Below this percentage of usable backends, route over all (50); see inPanic. */
  panicThresholdPercent: number;
}

export const defaultOutlierOptions: Readonly<OutlierOptions> = {
  consecutiveFailures: 5,
  baseEjectionMs: 30_000,
  maxEjectionMs: 300_000,
  maxEjectionPercent: 50,
  panicThresholdPercent: 50,
};

/** failure = a 5xx from the backend, or a connect error or timeout. */
export type Outcome = 'success' | 'failure';

export interface OutlierState {
  id: string;
  /** End of the current ejection (in the past while half-open); undefined when in rotation. */
  ejectedUntil: number | undefined;
  /** Times ejected, after decay. */
  ejections: number;
  consecutiveFailures: number;
}

interface Entry {
  consecutive: number;
  ejections: number;
  ejectedUntil: number | undefined;
  /** When the half-open trial was handed out; undefined when none is outstanding. */
  trialAt: number | undefined;
  /** Start of the current failure-free stretch, for the decay. */
  cleanSince: number;
}

export class OutlierDetector {
  readonly options: Readonly<OutlierOptions>;
  private readonly entries = new Map<string, Entry>();

  constructor(opts: Partial<OutlierOptions> = {}) {
    this.options = { ...defaultOutlierOptions, ...opts };
  }

  /** Record one result; returns 'ejected' when this result ejected the backend. */
  record(id: string, outcome: Outcome, now: number, totalBackends: number): 'ejected' | undefined {
    let e = this.entries.get(id);
    if (outcome === 'success') {
      if (!e) return undefined; // the common case: nothing kept for a clean backend
      this.decay(e, now);
      if (e.ejectedUntil !== undefined) {
        if (now < e.ejectedUntil) return undefined;
        e.ejectedUntil = undefined; // half-open trial passed: back in full
        e.trialAt = undefined;
        e.cleanSince = now;
      }
      e.consecutive = 0;
      if (e.ejections === 0) this.entries.delete(id);
      return undefined;
    }
    if (!(this.options.consecutiveFailures > 0)) return undefined;
    if (!e) {
      e = { consecutive: 0, ejections: 0, ejectedUntil: undefined, trialAt: undefined, cleanSince: now };
      this.entries.set(id, e);
    }
    this.decay(e, now);
    e.cleanSince = now;
    if (e.ejectedUntil !== undefined) {
      if (now < e.ejectedUntil) return undefined;
      this.eject(e, now); // half-open trial failed; it already counts towards the ejected share
      return 'ejected';
    }
    e.consecutive++;
    if (e.consecutive < this.options.consecutiveFailures || !this.mayEject(totalBackends)) return undefined;
    this.eject(e, now);
    return 'ejected';
  }

  /**
   * Whether the backend is out of rotation now: ejected, or half-open with its trial outstanding.
   * Half-open with the trial available is not ejected: the next pick may take it, once (admits).
   */
  isEjected(id: string, now: number): boolean {
    const e = this.entries.get(id);
    if (e?.ejectedUntil === undefined) return false;
    return now < e.ejectedUntil || this.trialOutstanding(e, now);
  }

  /**
   * Whether a request may go to the backend now; call it when sending, not when listing: for a
   * half-open backend it is true exactly once (the trial) until the trial's result is recorded.
   */
  admits(id: string, now: number): boolean {
    const e = this.entries.get(id);
    if (e?.ejectedUntil === undefined) return true;
    if (now < e.ejectedUntil || this.trialOutstanding(e, now)) return false;
    e.trialAt = now;
    return true;
  }

  /** Past its ejection with no trial outstanding: the next request sent there is the trial. */
  halfOpen(id: string, now: number): boolean {
    const e = this.entries.get(id);
    return e?.ejectedUntil !== undefined && now >= e.ejectedUntil && !this.trialOutstanding(e, now);
  }

  /** Backends ejected or half-open: the share maxEjectionPercent bounds. */
  ejectedCount(_now: number): number {
    let n = 0;
    for (const e of this.entries.values()) if (e.ejectedUntil !== undefined) n++;
    return n;
  }

  /** Drop a backend that left the set (its id may come back as a new backend). */
  forget(id: string): void {
    this.entries.delete(id);
  }

  /** Every backend with something on record (failures, ejections), for metrics and status. */
  snapshot(now: number): OutlierState[] {
    const out: OutlierState[] = [];
    for (const [id, e] of this.entries) {
      this.decay(e, now);
      if (e.ejectedUntil === undefined && e.ejections === 0 && e.consecutive === 0) {
        this.entries.delete(id);
        continue;
      }
      out.push({ id, ejectedUntil: e.ejectedUntil, ejections: e.ejections, consecutiveFailures: e.consecutive });
    }
    return out;
  }

  private eject(e: Entry, now: number): void {
    const { baseEjectionMs, maxEjectionMs } = this.options;
    e.ejections++;
    e.ejectedUntil = now + Math.min(baseEjectionMs * e.ejections, maxEjectionMs);
    e.trialAt = undefined;
    e.consecutive = 0;
  }

  private mayEject(totalBackends: number): boolean {
    const pct = this.options.maxEjectionPercent;
    if (totalBackends < 2 || !(pct > 0)) return false;
    const allowed = Math.max(1, Math.floor((totalBackends * pct) / 100));
    return this.ejectedCount(0) < allowed;
  }

  private trialOutstanding(e: Entry, now: number): boolean {
    return e.trialAt !== undefined && now - e.trialAt < this.options.baseEjectionMs;
  }

  /** One ejection forgiven per baseEjectionMs without a failure while in rotation. */
  private decay(e: Entry, now: number): void {
    const base = this.options.baseEjectionMs;
    if (e.ejectedUntil !== undefined || e.ejections === 0 || !(base > 0)) return;
    const periods = Math.floor((now - e.cleanSince) / base);
    if (periods <= 0) return;
    e.ejections = Math.max(0, e.ejections - periods);
    e.cleanSince += periods * base;
  }
}

/**
 * Panic mode (Envoy): when fewer than panicThresholdPercent of the backends are usable, route over
 * all healthy ones, ejected included, rather than overload the few left. 0 never panics.
 */
export function inPanic(usable: number, total: number, panicThresholdPercent: number): boolean {
  return total > 0 && usable * 100 < panicThresholdPercent * total;
}
