import { memo } from 'preact/compat';
import { useMemo, useState } from 'preact/hooks';
import { clock, num } from '../format';
import type { StatsSample } from '../types';

interface Series {
  name: string;
  values: (number | null)[];
}

const W = 300;
const H = 90;
const WINDOW_MS = 15 * 60_000;
const MIN_SPAN_MS = 60_000;

/** 1, 2, 5 × 10^n at or above v. */
function niceCeil(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/** A small line chart, inline SVG: one polyline per series, gaps where a value is null. */
function LineChart(props: { title: string; unit: string; times: number[]; series: Series[]; minMax?: number; emptyText?: string; noneText?: string }) {
  const { title, unit, times, series } = props;
  const [hover, setHover] = useState<number | null>(null);
  const end = times.at(-1) ?? Date.now();
  // The samples there are, up to the last 15 minutes (a fresh Switchboard: its first minute).
  const span = Math.min(WINDOW_MS, Math.max(MIN_SPAN_MS, end - (times[0] ?? end)));
  const start = end - span;
  let max = 0;
  for (const s of series) for (const v of s.values) if (v !== null && v > max) max = v;
  const top = niceCeil(Math.max(max, props.minMax ?? 1));
  const x = (t: number) => ((t - start) / span) * W;
  const y = (v: number) => H - (v / top) * (H - 4) - 1;
  const paths = series.map((s) => {
    let d = '';
    let pen = false;
    s.values.forEach((v, i) => {
      if (v === null) return void (pen = false);
      d += `${pen ? 'L' : 'M'}${x(times[i]!).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    });
    return d;
  });
  const hasData = times.length > 0;
  const at = hover !== null && hover < times.length ? hover : null;
  const onMove = (e: MouseEvent) => {
    const box = (e.currentTarget as HTMLElement).getBoundingClientRect();
    const t = start + ((e.clientX - box.left) / box.width) * span;
    let best = -1;
    let dist = Infinity;
    times.forEach((ti, i) => {
      const d = Math.abs(ti - t);
      if (d < dist) [best, dist] = [i, d];
    });
    setHover(best >= 0 ? best : null);
  };
  return (
    <figure class="chart" data-chart={title}>
      <figcaption>
        <span class="chart-title">{title}</span>
        <span class="chart-unit">{unit}</span>
      </figcaption>
      <div class="chart-plot" onMouseMove={hasData ? onMove : undefined} onMouseLeave={() => setHover(null)}>
        <span class="chart-max">{num(top)}</span>
        <svg viewBox={`0 0 ${W} ${H}`} preserveAspectRatio="none" role="img" aria-label={`${title}, last 15 minutes`}>
          <line class="grid" x1="0" x2={W} y1={y(top / 2)} y2={y(top / 2)} />
          <line class="axis" x1="0" x2={W} y1={H - 0.5} y2={H - 0.5} />
          {paths.map((d, i) => d && <path key={series[i]!.name} d={d} class={`line c${(i % 6) + 1}`} />)}
          {at !== null && <line class="cursor" x1={x(times[at]!)} x2={x(times[at]!)} y1="0" y2={H} />}
        </svg>
        {!hasData && <span class="chart-empty">{props.emptyText ?? 'waiting for samples…'}</span>}
        {hasData && series.length === 0 && <span class="chart-empty">{props.noneText ?? 'none'}</span>}
        {at !== null && <span class="chart-time">{clock(new Date(times[at]!).toISOString())}</span>}
      </div>
      <ul class="legend">
        {series.map((s, i) => {
          const v = at !== null ? s.values[at] : s.values.findLast((x) => x !== null);
          return (
            <li key={s.name}>
              <i class={`swatch c${(i % 6) + 1}`} aria-hidden="true" />
              {s.name} <b>{num(v ?? null)}</b>
            </li>
          );
        })}
        {times.length > 0 && (
          <li class="chart-span" title="the span the chart shows">
            {span >= 120_000 ? `${Math.round(span / 60_000)} min` : `${Math.round(span / 1000)} s`}
          </li>
        )}
      </ul>
    </figure>
  );
}

/** Series over the samples, one per key seen in any sample (sorted, so colours stay put). */
function keyed(samples: readonly StatsSample[], pick: (s: StatsSample) => Record<string, number> | undefined): Series[] {
  const keys = new Set<string>();
  for (const s of samples) for (const k of Object.keys(pick(s) ?? {})) keys.add(k);
  return [...keys].sort().map((k) => ({ name: k, values: samples.map((s) => pick(s)?.[k] ?? 0) }));
}

export const Charts = memo(function Charts({ samples, available }: { samples: readonly StatsSample[]; available: boolean }) {
  const data = useMemo(() => {
    const times = samples.map((s) => Date.parse(s.at));
    const proxy = samples.some((s) => s.proxy);
    return {
      times,
      placements: keyed(samples, (s) => s.placementsPerSecond),
      failures: keyed(samples, (s) => s.failuresPerSecond),
      latency: [
        { name: 'p50', values: samples.map((s) => s.probeLatencyMs?.p50 ?? null) },
        { name: 'p99', values: samples.map((s) => s.probeLatencyMs?.p99 ?? null) },
      ],
      proxy: proxy
        ? {
            rps: [{ name: 'req/s', values: samples.map((s) => s.proxy?.requestsPerSecond ?? null) }],
            p99: [{ name: 'p99', values: samples.map((s) => s.proxy?.p99Ms ?? null) }],
          }
        : null,
    };
  }, [samples]);
  const emptyText = available ? undefined : 'no stats from this Switchboard yet';
  return (
    <section class="charts" aria-label="Last 15 minutes">
      <LineChart title="Placements" unit="/s by pool" times={data.times} series={data.placements} emptyText={emptyText} noneText="no placements" />
      <LineChart title="Failures" unit="/s by reason" times={data.times} series={data.failures} emptyText={emptyText} noneText="no failures" />
      <LineChart title="Probe latency" unit="ms" times={data.times} series={data.latency} emptyText={emptyText} />
      {data.proxy && <LineChart title="Proxy requests" unit="/s" times={data.times} series={data.proxy.rps} />}
      {data.proxy && <LineChart title="Proxy latency" unit="p99 ms" times={data.times} series={data.proxy.p99} />}
    </section>
  );
});
