/**
 * Reading Prometheus's text exposition format (0.0.4): the agent's Prometheus collector reads
 * exporters (coturn's, node exporter's) with it, the dashboard's history reads Switchboard's own
 * `/metrics` (its workers' series included).
 *
 * Hand-written: the npm parsers for this format are unmaintained for years
 * (parse-prometheus-text-format's last release is from 2019) and prom-client only writes the
 * format. Reading samples is small: `name{labels} value [timestamp]`, `#` lines are comments.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;

function parseLabels(text: string, at: number): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  let i = at + 1; // after '{'
  for (;;) {
    while (text[i] === ' ' || text[i] === ',') i++;
    if (text[i] === '}') return { labels, end: i + 1 };
    const m = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(text.slice(i));
    if (!m) throw new Error(`bad label name at ${i}`);
    const name = m[0];
    i += name.length;
    while (text[i] === ' ') i++;
    if (text[i] !== '=') throw new Error(`expected = after ${name}`);
    i++;
    while (text[i] === ' ') i++;
    if (text[i] !== '"') throw new Error(`expected " after ${name}=`);
    i++;
    let value = '';
    for (;;) {
      const c = text[i];
      if (c === undefined) throw new Error('unterminated label value');
      if (c === '\\') {
        const n = text[i + 1];
        value += n === 'n' ? '\n' : (n ?? '');
        i += 2;
        continue;
      }
      if (c === '"') {
        i++;
        break;
      }
      value += c;
      i++;
    }
    labels[name] = value;
  }
}

function parseValue(text: string): number {
  switch (text) {
    case '+Inf':
      return Infinity;
    case '-Inf':
      return -Infinity;
    case 'NaN':
      return NaN;
  }
  const n = Number(text);
  if (text === '' || Number.isNaN(n)) throw new Error(`bad sample value "${text}"`);
  return n;
}

/** Every sample of an exposition; lines that cannot be read are skipped. */
export function parsePrometheusText(text: string): Sample[] {
  const out: Sample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = NAME.exec(line);
    if (!m) continue;
    try {
      let i = m[0].length;
      let labels: Record<string, string> = {};
      if (line[i] === '{') ({ labels, end: i } = parseLabels(line, i));
      const rest = line.slice(i).trim().split(/\s+/);
      out.push({ name: m[0], labels, value: parseValue(rest[0] ?? '') });
    } catch {
      /* a malformed line does not spoil the others */
    }
  }
  return out;
}

/** `name` or `name{label="value",...}` → what a sample must match. */
export function parseSelector(selector: string): { name: string; labels: Record<string, string> } {
  const s = selector.trim();
  const m = NAME.exec(s);
  if (!m) throw new Error(`"${selector}" is not a Prometheus metric name`);
  if (m[0].length === s.length) return { name: m[0], labels: {} };
  if (s[m[0].length] !== '{' || !s.endsWith('}')) throw new Error(`"${selector}" is not name{label="value"}`);
  const { labels, end } = parseLabels(s, m[0].length);
  if (end !== s.length) throw new Error(`"${selector}" is not name{label="value"}`);
  return { name: m[0], labels };
}

