import { request } from 'undici';
import type { LoadSnapshot } from '../types.js';

/**
 * One load source. `collect` reads it once and resolves with the metrics it knows; it rejects
 * (or is aborted by `signal` after the source's timeout) when the source cannot be read. The
 * runner (runner.ts) calls it every `intervalMs` and counts consecutive failures.
 */
export interface Collector {
  /** Names the source in logs and in `down #<name> failing`. */
  readonly name: string;
  collect(signal: AbortSignal): Promise<LoadSnapshot>;
}

/** Timing of one source, with the agent-wide defaults filled in. */
export interface SourceTiming {
  intervalMs: number;
  timeoutMs: number;
  /** Consecutive failures before the source counts as failing (→ `down`). */
  failures: number;
}

const MAX_BODY = 4 * 1024 * 1024;

/** GET `url` as text: 2xx only, at most 4 MB, aborted by `signal`. */
export async function fetchText(url: string, signal: AbortSignal, headers: Record<string, string> = {}): Promise<string> {
  const res = await request(url, { method: 'GET', signal, headers });
  if (res.statusCode < 200 || res.statusCode > 299) {
    await res.body.dump().catch(() => undefined);
    throw new Error(`GET ${url}: HTTP ${res.statusCode}`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) {
      res.body.destroy();
      throw new Error(`GET ${url}: answer larger than ${MAX_BODY} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** GET `url` as JSON. */
export async function fetchJson(url: string, signal: AbortSignal, headers: Record<string, string> = {}): Promise<unknown> {
  const text = await fetchText(url, signal, { accept: 'application/json', ...headers });
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new Error(`GET ${url}: not JSON`);
  }
}

/** A finite number from a JSON value (numbers, and numeric strings as some exporters write them). */
export function toNumber(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
  if (typeof v === 'string' && v.trim() !== '') {
    const n = Number(v);
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}
