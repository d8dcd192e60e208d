import { Counter, Gauge, type Registry } from 'prom-client';
import type { OriginProxies } from './index.js';

/**
 * The media listeners of the origins pool (RTMP, HTTP-FLV/HLS, WHIP/WHEP, WebRTC over UDP) as
 * Prometheus metrics. The listeners count in plain numbers (their `stats`); the series are made at
 * scrape time, so relaying costs nothing more. Registered whether or not a listener runs: a
 * listener that is off has no series.
 */
export function registerMediaMetrics(registry: Registry, proxies: () => OriginProxies | undefined): void {
  new Counter({
    name: 'switchboard_media_connections_total',
    help: 'Client connections (RTMP), requests (HTTP-FLV/HLS) and offers (WHIP/WHEP) of the media listeners, by outcome: accepted, refused (limits, no origin), failed.',
    labelNames: ['listener', 'outcome'] as const,
    registers: [registry],
    collect() {
      this.reset();
      const p = proxies();
      const set = (listener: string, accepted: number, refused: number, failed: number) => {
        this.inc({ listener, outcome: 'accepted' }, accepted);
        this.inc({ listener, outcome: 'refused' }, refused);
        this.inc({ listener, outcome: 'failed' }, failed);
      };
      if (p?.rtmp) set('rtmp', p.rtmp.stats.accepted, p.rtmp.stats.refused, p.rtmp.stats.failed);
      if (p?.http) set('http', p.http.stats.requests, p.http.stats.refused, p.http.stats.failed);
      if (p?.whip) set('whip', p.whip.stats.answered, p.whip.stats.refused, p.whip.stats.failed);
    },
  });
  new Gauge({
    name: 'switchboard_media_active',
    help: 'Sessions relaying now: RTMP connections past publish/play, HTTP streams and playlists being served, WebRTC UDP sessions.',
    labelNames: ['listener'] as const,
    registers: [registry],
    collect() {
      this.reset();
      const p = proxies();
      if (p?.rtmp) this.set({ listener: 'rtmp' }, p.rtmp.stats.relaying);
      if (p?.http) this.set({ listener: 'http' }, p.http.stats.active);
      if (p?.udp) this.set({ listener: 'udp' }, p.udp.sessionCount);
    },
  });
  const byLabel = (name: string, help: string, label: string, read: () => Record<string, number> | undefined) =>
    new Counter({
      name,
      help,
      labelNames: [label],
      registers: [registry],
      collect() {
        this.reset();
        for (const [value, n] of Object.entries(read() ?? {})) this.inc({ [label]: value }, n);
      },
    });
  byLabel('switchboard_media_rtmp_bytes_total', 'Bytes the RTMP proxy relayed once sessions were set up: from_client (publishers, players’ commands) and to_client (what origins sent).', 'direction', () => {
    const rtmp = proxies()?.rtmp;
    return rtmp && { from_client: rtmp.stats.bytesFromClients, to_client: rtmp.stats.bytesToClients };
  });
  byLabel('switchboard_media_udp_packets_total', 'WebRTC UDP datagrams relayed by ICE ufrag: to_origin, to_client.', 'direction', () => {
    const udp = proxies()?.udp;
    return udp && { to_origin: udp.stats.toOrigin, to_client: udp.stats.toClient };
  });
  byLabel(
    'switchboard_media_udp_dropped_total',
    'WebRTC UDP datagrams dropped: unknown (from a new client and not a STUN binding request with a username), unresolved (a ufrag no WHIP/WHEP answer gave out), full (session or pending limits reached).',
    'reason',
    () => {
      const udp = proxies()?.udp;
      return udp && { unknown: udp.stats.droppedUnknown, unresolved: udp.stats.droppedUnresolved, full: udp.stats.droppedFull };
    },
  );
}
