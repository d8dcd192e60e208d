import type { LoadSnapshot } from '../types.js';
import { fetchJson, toNumber, type Collector } from './collector.js';
import type { CpuMode } from './system.js';

/**
 * SRS's HTTP API (port 1985 by default): `GET /api/v1/summaries` for the host's CPU and
 * `GET /api/v1/streams` for publishers, players and bandwidth.
 *
 * The shapes are SRS 5/6's, read from its source (ossrs/srs, trunk/src/app/srs_app_utility.cpp
 * `srs_api_dump_summaries`, srs_app_statistic.cpp `SrsStatisticStream::dumps`,
 * srs_app_http_api.cpp `SrsGoApiStreams`): every answer is `{"code": 0, "server": ..., ...}`;
 * summaries put `data.system.cpu_percent` (a fraction, 0..1, from /proc/stat), `data.system.cpus`
 * and `data.system.load_1m`; streams list `streams[]` with `clients` (players and the publisher),
 * `publish.active` and `kbps.recv_30s` / `kbps.send_30s`. The streams list is paged (`start`,
 * `count`, 10 by default), so the collector asks for `count=10000`.
 *
 * - cpu: load_1m / cpus as a percentage (the seed's definition), or cpu_percent × 100 with
 *   `cpuMode: utilisation`
 * - publishers: streams with an active publisher; subscribers: clients minus those publishers
 * - band-in / band-out: the streams' 30-second kbps, summed, in Mbps
 */

type Json = Record<string, unknown>;

function checkCode(doc: unknown, what: string): Json {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error(`SRS ${what}: not a JSON object`);
  const code = (doc as Json).code;
  if (code !== 0) throw new Error(`SRS ${what}: code ${JSON.stringify(code)}`);
  return doc as Json;
}

/** /api/v1/summaries → cpu. */
export function srsSummariesLoad(doc: unknown, cpuMode: CpuMode = 'loadavg'): LoadSnapshot {
  const data = checkCode(doc, '/api/v1/summaries').data as Json | undefined;
  const system = (data?.system ?? undefined) as Json | undefined;
  if (!system) throw new Error('SRS /api/v1/summaries: no data.system');
  if (cpuMode === 'utilisation') {
    const p = toNumber(system.cpu_percent);
    if (p === undefined) throw new Error('SRS /api/v1/summaries: no data.system.cpu_percent');
    return { cpu: p * 100 };
  }
  const load1 = toNumber(system.load_1m);
  const cpus = toNumber(system.cpus_online) ?? toNumber(system.cpus);
  if (load1 === undefined || !cpus) throw new Error('SRS /api/v1/summaries: no data.system.load_1m / cpus');
  return { cpu: (load1 / cpus) * 100 };
}

/** /api/v1/streams → publishers, subscribers, band-in, band-out. */
export function srsStreamsLoad(doc: unknown): LoadSnapshot {
  const streams = checkCode(doc, '/api/v1/streams').streams;
  if (!Array.isArray(streams)) throw new Error('SRS /api/v1/streams: no streams list');
  let publishers = 0;
  let clients = 0;
  let kin = 0;
  let kout = 0;
  for (const s of streams as Json[]) {
    if (typeof s !== 'object' || s === null) continue;
    const active = (s.publish as Json | undefined)?.active === true;
    if (active) publishers++;
    clients += toNumber(s.clients) ?? 0;
    const kbps = (s.kbps ?? {}) as Json;
    kin += toNumber(kbps.recv_30s) ?? 0;
    kout += toNumber(kbps.send_30s) ?? 0;
  }
  return { publishers, subscribers: Math.max(0, clients - publishers), 'band-in': kin / 1000, 'band-out': kout / 1000 };
}

export class SrsCollector implements Collector {
  readonly name = 'srs';
  private readonly base: string;
  constructor(
    base: string,
    private readonly cpuMode: CpuMode = 'loadavg',
  ) {
    this.base = base.replace(/\/+$/, '');
  }

  async collect(signal: AbortSignal): Promise<LoadSnapshot> {
    const [summaries, streams] = await Promise.all([
      fetchJson(`${this.base}/api/v1/summaries`, signal),
      fetchJson(`${this.base}/api/v1/streams?start=0&count=10000`, signal),
    ]);
    return { ...srsSummariesLoad(summaries, this.cpuMode), ...srsStreamsLoad(streams) };
  }
}
