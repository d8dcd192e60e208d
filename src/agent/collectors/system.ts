import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import type { LoadSnapshot } from '../types.js';
import type { Collector } from './collector.js';

/**
 * The host's CPU and network, from /proc.
 *
 * `cpu` as the seed defines it: the 1-minute load average as a percentage of the cores
 * (/proc/loadavg: load 1.5 on 4 cores is 37.5). `cpuMode: utilisation` instead reports the share
 * of CPU time not idle between two readings of /proc/stat. `band-in` / `band-out` are Mbps from
 * the byte counters of /proc/net/dev between two readings: one interface, or all but loopback.
 * Rates need two readings, so the first collection reports `cpu` (load average) only.
 */

export type CpuMode = 'loadavg' | 'utilisation';

/** /proc/loadavg → the 1-minute load average. */
export function parseLoadavg(text: string): number {
  const first = text.trim().split(/\s+/)[0];
  const n = Number(first);
  if (first === undefined || first === '' || !Number.isFinite(n) || n < 0) throw new Error(`/proc/loadavg: cannot read "${text.slice(0, 40)}"`);
  return n;
}

/** The seed's cpu: load average as a percentage of the cores. */
export function loadavgPercent(load1: number, cores: number): number {
  return (load1 / Math.max(1, cores)) * 100;
}

export interface CpuTimes {
  /** All jiffies (user, nice, system, idle, iowait, irq, softirq, steal). */
  total: number;
  /** idle + iowait. */
  idle: number;
}

/** /proc/stat → the aggregate `cpu` line's times. */
export function parseProcStat(text: string): CpuTimes {
  const line = text.split('\n').find((l) => /^cpu\s/.test(l));
  if (!line) throw new Error('/proc/stat: no aggregate cpu line');
  const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
  if (f.length < 4 || f.some((n) => !Number.isFinite(n))) throw new Error(`/proc/stat: cannot read "${line}"`);
  // guest and guest_nice (fields 9 and 10) are already counted in user and nice.
  const total = f.reduce((a, b) => a + b, 0);
  return { total, idle: (f[3] ?? 0) + (f[4] ?? 0) };
}

/** CPU utilisation in percent between two /proc/stat readings; undefined when no time passed. */
export function cpuUtilisation(prev: CpuTimes, cur: CpuTimes): number | undefined {
  const total = cur.total - prev.total;
  if (!(total > 0)) return undefined;
  const idle = cur.idle - prev.idle;
  return Math.min(100, Math.max(0, (1 - idle / total) * 100));
}

export interface NetCounters {
  [iface: string]: { rx: number; tx: number };
}

/** /proc/net/dev → received / transmitted bytes per interface. */
export function parseNetDev(text: string): NetCounters {
  const out: NetCounters = {};
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0 || line.includes('|')) continue;
    const name = line.slice(0, colon).trim();
    const f = line.slice(colon + 1).trim().split(/\s+/).map(Number);
    if (!name || f.length < 9 || !Number.isFinite(f[0]) || !Number.isFinite(f[8])) continue;
    out[name] = { rx: f[0]!, tx: f[8]! };
  }
  return out;
}

/**
 * Mbps in and out between two readings over `seconds`: `iface`, or the sum of all interfaces but
 * loopback (`lo`). A counter that went backwards (interface reset) counts as zero.
 */
export function netRates(prev: NetCounters, cur: NetCounters, seconds: number, iface?: string): { in: number; out: number } {
  if (iface !== undefined && !cur[iface]) throw new Error(`/proc/net/dev: no interface ${iface}`);
  let rx = 0;
  let tx = 0;
  for (const [name, c] of Object.entries(cur)) {
    if (iface !== undefined ? name !== iface : name === 'lo') continue;
    const p = prev[name];
    if (!p) continue;
    rx += Math.max(0, c.rx - p.rx);
    tx += Math.max(0, c.tx - p.tx);
  }
  const mbps = (bytes: number) => (seconds > 0 ? (bytes * 8) / 1e6 / seconds : 0);
  return { in: mbps(rx), out: mbps(tx) };
}

export interface SystemCollectorOptions {
  cpuMode?: CpuMode;
  /** One interface for band-in/out; default: all but loopback. */
  interface?: string;
  /** Where /proc is (tests). */
  procRoot?: string;
  cores?: number;
}

export class SystemCollector implements Collector {
  readonly name = 'system';
  private prevStat: CpuTimes | undefined;
  private prevNet: { at: number; counters: NetCounters } | undefined;

  constructor(private readonly opts: SystemCollectorOptions = {}) {}

  async collect(): Promise<LoadSnapshot> {
    const root = this.opts.procRoot ?? '/proc';
    const load: LoadSnapshot = {};
    if ((this.opts.cpuMode ?? 'loadavg') === 'loadavg') {
      load.cpu = loadavgPercent(parseLoadavg(await readFile(`${root}/loadavg`, 'utf8')), this.opts.cores ?? availableParallelism());
    } else {
      const stat = parseProcStat(await readFile(`${root}/stat`, 'utf8'));
      if (this.prevStat) {
        const u = cpuUtilisation(this.prevStat, stat);
        if (u !== undefined) load.cpu = u;
      }
      this.prevStat = stat;
    }
    const now = Date.now();
    const counters = parseNetDev(await readFile(`${root}/net/dev`, 'utf8'));
    if (this.opts.interface !== undefined && !counters[this.opts.interface]) throw new Error(`/proc/net/dev: no interface ${this.opts.interface}`);
    if (this.prevNet) {
      const r = netRates(this.prevNet.counters, counters, (now - this.prevNet.at) / 1000, this.opts.interface);
      load['band-in'] = r.in;
      load['band-out'] = r.out;
    }
    this.prevNet = { at: now, counters };
    return load;
  }
}
