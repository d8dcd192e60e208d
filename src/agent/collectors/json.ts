import type { LoadSnapshot } from '../types.js';
import { fetchJson, toNumber, type Collector } from './collector.js';

/**
 * A JSON load URL: by default a flat object whose numeric values are metrics
 * (`{"cpu": 12, "consumers": 300}`). With `fields`, each metric is read from a path instead:
 * a JSON pointer (`/load/cpu`, `/workers/0/consumers`; `~1` is `/`, `~0` is `~`) or dotted
 * (`load.cpu`).
 */

/** The value at a JSON pointer or dotted path; undefined when absent. */
export function pick(doc: unknown, path: string): unknown {
  const keys = path.startsWith('/')
    ? path.slice(1).split('/').map((k) => k.replaceAll('~1', '/').replaceAll('~0', '~'))
    : path === ''
      ? []
      : path.split('.');
  let node = doc;
  for (const key of keys) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

/** Metrics from a JSON document. Throws when a mapped field is missing or not a number. */
export function jsonLoad(doc: unknown, fields?: Record<string, string>): LoadSnapshot {
  const load: LoadSnapshot = {};
  if (fields && Object.keys(fields).length > 0) {
    for (const [metric, path] of Object.entries(fields)) {
      const v = toNumber(pick(doc, path));
      if (v === undefined) throw new Error(`JSON load: ${path} (for ${metric}) is not a number`);
      load[metric] = v;
    }
    return load;
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error('JSON load: not an object');
  for (const [k, v] of Object.entries(doc)) {
    if (typeof v === 'number' && Number.isFinite(v)) load[k] = v;
  }
  return load;
}

export class JsonCollector implements Collector {
  readonly name = 'json';
  constructor(
    private readonly url: string,
    private readonly fields?: Record<string, string>,
    private readonly headers: Record<string, string> = {},
  ) {}

  async collect(signal: AbortSignal): Promise<LoadSnapshot> {
    return jsonLoad(await fetchJson(this.url, signal, this.headers), this.fields);
  }
}
