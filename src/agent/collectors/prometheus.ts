import type { LoadSnapshot } from '../types.js';
import { fetchText, type Collector } from './collector.js';
import { parsePrometheusText, parseSelector, type Sample } from '../../metrics/text-format.js';

export { parsePrometheusText, parseSelector, type Sample } from '../../metrics/text-format.js';

/** Agent metrics from samples: metric → sum of the series its selector matches. Throws when one matches none. */
export function prometheusLoad(samples: Sample[], metrics: Record<string, string>): LoadSnapshot {
  const load: LoadSnapshot = {};
  for (const [metric, selector] of Object.entries(metrics)) {
    const sel = parseSelector(selector);
    let found = false;
    let sum = 0;
    for (const s of samples) {
      if (s.name !== sel.name) continue;
      if (!Object.entries(sel.labels).every(([k, v]) => s.labels[k] === v)) continue;
      found = true;
      if (Number.isFinite(s.value)) sum += s.value;
    }
    if (!found) throw new Error(`Prometheus: no series ${selector} (for ${metric})`);
    load[metric] = sum;
  }
  return load;
}

/**
 * A Prometheus exporter's `/metrics` (text exposition format 0.0.4), e.g. coturn's
 * (`turn_total_allocations`) or node exporter's (`node_load1`). Each agent metric names one
 * Prometheus metric, optionally with label matchers (`turn_total_allocations{type="udp"}`); its
 * value is the sum of the matching series. The format is read by `metrics/text-format.ts`.
 */
export class PrometheusCollector implements Collector {
  readonly name = 'prometheus';
  constructor(
    private readonly url: string,
    private readonly metrics: Record<string, string>,
  ) {}

  async collect(signal: AbortSignal): Promise<LoadSnapshot> {
    return prometheusLoad(parsePrometheusText(await fetchText(this.url, signal, { accept: 'text/plain;version=0.0.4' })), this.metrics);
  }
}
