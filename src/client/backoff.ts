/** Retry timing for the Switchboard client: pure, so it is tested without a clock. */
import { RETRYABLE_ERROR_CODES as CODES } from '../retryable.js';

export interface BackoffOptions {
  /** Wait before the first retry (ms). */
  minDelayMs: number;
  /** Longest wait between attempts (ms). */
  maxDelayMs: number;
}

/**
 * The wait before retry number `retry` (0 for the first): exponential (min × 2^retry, capped at
 * max) with "equal jitter" — half fixed, half random — so many clients retrying after one outage
 * do not arrive together, yet every wait is at least half the exponential step.
 */
export function backoffDelay(retry: number, options: BackoffOptions, random: () => number = Math.random): number {
  const step = Math.min(options.maxDelayMs, options.minDelayMs * 2 ** Math.max(0, retry));
  return Math.round(step / 2 + random() * (step / 2));
}

/**
 * A `Retry-After` header as milliseconds from `now`: delta-seconds or an HTTP date. Undefined when
 * absent or unreadable; never negative.
 */
export function parseRetryAfter(header: string | string[] | undefined, now: number = Date.now()): number | undefined {
  const value = (Array.isArray(header) ? header[0] : header)?.trim();
  if (!value) return undefined;
  if (/^\d+(\.\d+)?$/.test(value)) return Math.round(Number(value) * 1000);
  // An HTTP date names its day and month ("Wed, 21 Oct 2015 07:28:00 GMT"); Date.parse alone would take "-1" as a year.
  if (!/^[A-Za-z]{3},/.test(value)) return undefined;
  const date = Date.parse(value);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

/** Connection error codes worth another attempt (shared with the webhook notifier). */
export const RETRYABLE_ERROR_CODES: ReadonlySet<string> = new Set(CODES);

/** Statuses worth another attempt: 429 and every 5xx. Other 4xx never are. */
export function retryableStatus(status: number): boolean {
  return status === 429 || (status >= 500 && status <= 599);
}
