import { request } from 'undici';

export interface PrometheusSource {
  /** Host name or URL of the Prometheus server (seed: prometheusEndpoint). */
  endpoint: string;
  port?: number;
  /** PromQL; each `%s` is replaced by the private addresses joined with `|`. */
  query: string;
}

interface RangeResult {
  status: string;
  error?: string;
  data?: { resultType: string; result: { metric: Record<string, string>; values: [number, string][] }[] };
}

/** Base URL of a Prometheus given as `host`, `host` + port, or a full URL. */
export function prometheusBase(source: Pick<PrometheusSource, 'endpoint' | 'port'>): string {
  const hasScheme = /^https?:\/\//.test(source.endpoint);
  const url = new URL(hasScheme ? source.endpoint : `http://${source.endpoint}`);
  if (source.port !== undefined) url.port = String(source.port);
  return url.toString().replace(/\/+$/, '');
}

/**
 * What the coturn balancer's `metrics` algorithm does: a `query_range` over the last
 * `durationMinutes` with a 60 s step; each series is matched to a server by the label whose value
 * is the server's private address; series with fewer than `minPoints` points are dropped; the
 * result is each matched server's mean.
 */
export async function meanLoadByAddress(
  source: PrometheusSource,
  addresses: string[],
  opts: { durationMinutes: number; timeoutMs: number; nowMs: number; minPoints?: number; stepSeconds?: number },
): Promise<Map<string, number>> {
  const query = source.query.replaceAll('%s', addresses.map(escapeRegex).join('|'));
  const end = Math.floor(opts.nowMs / 1000);
  const params = new URLSearchParams({
    query,
    start: String(end - opts.durationMinutes * 60),
    end: String(end),
    step: String(opts.stepSeconds ?? 60),
  });
  const res = await request(`${prometheusBase(source)}/api/v1/query_range?${params}`, {
    signal: AbortSignal.timeout(opts.timeoutMs),
    headersTimeout: opts.timeoutMs,
    bodyTimeout: opts.timeoutMs,
  });
  const body = (await res.body.json()) as RangeResult;
  if (res.statusCode !== 200 || body.status !== 'success' || !body.data) {
    throw new Error(`Prometheus answered HTTP ${res.statusCode}: ${body.error ?? body.status}`);
  }
  const wanted = new Set(addresses);
  const means = new Map<string, number>();
  const minPoints = opts.minPoints ?? 1;
  for (const series of body.data.result) {
    const address = Object.values(series.metric).find((v) => wanted.has(v) || wanted.has(v.replace(/:\d+$/, '')));
    if (address === undefined) continue;
    const values = series.values.map(([, v]) => Number(v)).filter(Number.isFinite);
    if (values.length < minPoints) continue;
    means.set(wanted.has(address) ? address : address.replace(/:\d+$/, ''), values.reduce((a, b) => a + b, 0) / values.length);
  }
  return means;
}

/** Addresses go into a PromQL regex (`ip=~"%s"`): dots and the like must match literally. */
function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\\\$&');
}
