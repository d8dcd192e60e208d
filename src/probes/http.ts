import { performance } from 'node:perf_hooks';
import { request, type Dispatcher } from 'undici';
import type { ProbeOutcome } from '../core/health.js';
import { FORBIDDEN_DESTINATION, NetworkPolicy, type ForbiddenDestinationError } from '../security/network-policy.js';

/** Joins a base URL (which may carry a path prefix) and an absolute path. */
export function joinUrl(base: string, path: string): string {
  return base.replace(/\/+$/, '') + (path.startsWith('/') ? path : `/${path}`);
}

let guarded: Dispatcher | undefined;

/**
 * HTTP health probe (seed 000): `GET url`; 200 (or what `healthy` accepts) is healthy, anything else — another status, a
 * connection error, no answer within `timeoutMs` — is not. Without a `dispatcher`, connections go
 * through a shared Agent guarded by the default network policy (never to link-local or metadata
 * addresses); pass `networkPolicy.agent()` to apply the configured one.
 */
export async function probeHttp(
  url: string,
  timeoutMs: number,
  dispatcher: Dispatcher = (guarded ??= new NetworkPolicy().agent()),
  healthy: (status: number) => boolean = (status) => status === 200,
): Promise<ProbeOutcome> {
  const started = performance.now();
  const at = () => Date.now();
  try {
    const res = await request(url, {
      method: 'GET',
      signal: AbortSignal.timeout(timeoutMs),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      headers: { 'user-agent': 'switchboard-health-check' },
      dispatcher,
    });
    await res.body.dump();
    const latencyMs = performance.now() - started;
    if (healthy(res.statusCode)) return { ok: true, at: at(), latencyMs };
    return { ok: false, at: at(), latencyMs, error: `HTTP ${res.statusCode}` };
  } catch (err) {
    const latencyMs = performance.now() - started;
    const e = err as Error & { code?: string };
    const error =
      e.name === 'TimeoutError' || e.name === 'AbortError'
        ? `timeout after ${timeoutMs} ms`
        : e.code === FORBIDDEN_DESTINATION
          ? `${e.code}: ${(e as ForbiddenDestinationError).reason}`
          : (e.code ?? e.message);
    return { ok: false, at: at(), latencyMs, error };
  }
}

/** `200-399` or `200,204,301-302` → a status predicate (HAProxy's `http-check expect status`). */
export function statusMatcher(spec: string): (status: number) => boolean {
  const ranges = spec.split(',').map((part) => {
    const [a, b] = part.split('-').map(Number);
    return [a!, b ?? a!] as const;
  });
  return (status) => ranges.some(([lo, hi]) => status >= lo && status <= hi);
}
