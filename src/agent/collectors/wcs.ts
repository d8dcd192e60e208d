import type { LoadSnapshot } from '../types.js';
import { fetchText, type Collector } from './collector.js';

/**
 * Flashphoner WCS's statistics page (`http://localhost:8081/?action=stat`): `key=value` lines
 * under `-----... Stats-----` headings, as the seed shows it.
 *
 * Mapping to the seed's thresholds ("publishers ... including WebRTC, RTMP, RTSP streams",
 * "subscribers ... including WebRTC, RTMP, RTSP players", "hls ... HLS streams"):
 * - publishers  = streams_webrtc_in + streams_rtmp_in + streams_rtsp_in + streams_rtsp_push_in
 * - subscribers = streams_webrtc_out + streams_websocket_out + streams_rtmp_out + streams_rtsp_out,
 *                 or the viewers listed in streams_viewers (`name/count` per stream) when more
 * - hls         = streams_hls
 * also `connections` and `viewers` for thresholds of those names. A value is the first number on
 * its line (the seed's sample has `streams_webrtc_in=1 2`, where `2` is an annotation marker).
 */

/** The page → key → raw value (text after the first `=`). Headings and other lines are skipped. */
export function parseWcsStats(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    const eq = line.indexOf('=');
    if (eq <= 0 || line.startsWith('-')) continue;
    out[line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
  }
  return out;
}

/** The first number of a value (`1 2` → 1); undefined when it does not start with one. */
export function firstNumber(value: string | undefined): number | undefined {
  const m = value === undefined ? null : /^-?\d+(?:\.\d+)?/.exec(value);
  return m ? Number(m[0]) : undefined;
}

/** Viewers of `streams_viewers` (`test/0`, `a/3,b/4`): the sum of the counts after the last `/`. */
export function viewerCount(value: string | undefined): number {
  if (!value) return 0;
  let sum = 0;
  for (const entry of value.split(/[,;\s]+/)) {
    const m = /\/(\d+)$/.exec(entry);
    if (m) sum += Number(m[1]);
  }
  return sum;
}

const PUBLISHER_KEYS = ['streams_webrtc_in', 'streams_rtmp_in', 'streams_rtsp_in', 'streams_rtsp_push_in'];
const SUBSCRIBER_KEYS = ['streams_webrtc_out', 'streams_websocket_out', 'streams_rtmp_out', 'streams_rtsp_out'];

/** The seed's metrics from a parsed page. Throws when it holds none of the stream counters. */
export function wcsLoad(stats: Record<string, string>): LoadSnapshot {
  if (!PUBLISHER_KEYS.some((k) => k in stats) && !('streams_hls' in stats)) throw new Error('not a WCS statistics page (no streams_* counters)');
  const sum = (keys: string[]) => keys.reduce((acc, k) => acc + (firstNumber(stats[k]) ?? 0), 0);
  const viewers = viewerCount(stats.streams_viewers);
  const load: LoadSnapshot = {
    publishers: sum(PUBLISHER_KEYS),
    subscribers: Math.max(sum(SUBSCRIBER_KEYS), viewers),
    hls: firstNumber(stats.streams_hls) ?? 0,
    viewers,
  };
  const connections = firstNumber(stats.connections);
  if (connections !== undefined) load.connections = connections;
  return load;
}

export class WcsCollector implements Collector {
  readonly name = 'wcs';
  constructor(private readonly url: string) {}

  async collect(signal: AbortSignal): Promise<LoadSnapshot> {
    return wcsLoad(parseWcsStats(await fetchText(this.url, signal)));
  }
}
