import type { Logger } from 'pino';
import type { Config } from '../../config/schema.js';
import type { Server } from '../../core/model.js';
import { originListen } from '../../pools/origins/srs.js';
import type { StreamService } from '../../pools/origins/streams.js';
import { AppError } from '../../errors.js';
import type { NetworkPolicy } from '../../security/network-policy.js';
import type { StateStore } from '../../store/store.js';
import { RtmpProxy } from '../rtmp/proxy.js';
import { storeSegmentIndex, StreamHttpProxy } from './http.js';
import { RtcUdpProxy } from './udp.js';
import { WhipProxy } from './whip.js';

/** The media listeners of the origins pool (seed 003), started from `origins.*Port`. */
export interface OriginProxies {
  rtmp?: RtmpProxy;
  http?: StreamHttpProxy;
  whip?: WhipProxy;
  udp?: RtcUdpProxy;
  close(): Promise<void>;
}

/** An origin's address for `protocol`: its first listen entry (host from the entry, else the origin's). */
export function originAddress(server: Pick<Server, 'id' | 'endpoints'>, protocol: 'rtmp' | 'http'): { host: string; port: number } {
  const addr = originListen(server, protocol);
  if (!addr) throw new AppError(503, 'origin_no_' + protocol, `origin ${server.id} registered no ${protocol} port`);
  return addr;
}

/**
 * Starts the listeners whose ports are configured (SRS's proxy's PROXY_RTMP_SERVER,
 * PROXY_HTTP_SERVER, PROXY_HTTP_API, PROXY_WEBRTC_SERVER). Every stream goes to the origin
 * `streams.locate` maps it to, the same on every instance sharing the store.
 */
export async function startOriginProxies(o: { config: Config; store: StateStore; streams: StreamService; logger: Logger; networkPolicy: NetworkPolicy }): Promise<OriginProxies> {
  const { config, streams, logger } = o;
  const c = config.origins;
  const host = config.server.host;
  const out: OriginProxies = { close: async () => undefined };
  const started: { close(): Promise<void> }[] = [];
  out.close = async () => {
    for (const s of started.reverse()) await s.close().catch(() => undefined);
  };
  try {
    if (c.rtmpPort !== undefined) {
      out.rtmp = new RtmpProxy({ host, port: c.rtmpPort, logger: logger.child({ component: 'rtmp' }), resolve: async (key, mode) => originAddress(await streams.locate(key, mode), 'rtmp') });
      await out.rtmp.listen();
      started.push(out.rtmp);
    }
    if (c.httpPort !== undefined) {
      out.http = new StreamHttpProxy({ streams, host, port: c.httpPort, logger: logger.child({ component: 'stream-http' }), segments: storeSegmentIndex(o.store, (c.sessionTtlSeconds ?? 120) * 1000), networkPolicy: o.networkPolicy });
      await out.http.listen();
      started.push(out.http);
    }
    if (c.webrtcPort !== undefined || c.httpApiPort !== undefined) {
      // The UDP relay resolves ufrags through the WHIP proxy, which answered the offers.
      let whip: WhipProxy | undefined;
      if (c.webrtcPort !== undefined) {
        out.udp = new RtcUdpProxy({ host, port: c.webrtcPort, logger: logger.child({ component: 'webrtc-udp' }), resolve: (ufrag) => whip?.resolveUfrag(ufrag) ?? Promise.resolve(undefined) });
        await out.udp.listen();
        started.push(out.udp);
      }
      if (c.httpApiPort !== undefined) {
        const candidate = c.webrtcCandidate ?? (host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host);
        whip = new WhipProxy({
          streams,
          host,
          port: c.httpApiPort,
          publicHost: candidate,
          udpPort: out.udp?.port ?? c.webrtcPort ?? 18000,
          sessionTtlMs: (c.sessionTtlSeconds ?? 120) * 1000,
          dispatcher: o.networkPolicy.agent({ connectTimeoutMs: 5_000 }),
          logger: logger.child({ component: 'whip' }),
        });
        await whip.listen();
        out.whip = whip;
        started.push(whip);
        logger.info({ candidate }, `WHIP/WHEP answers name ${candidate} as the WebRTC candidate (set CANDIDATE to the address clients reach)`);
        if (c.webrtcPort === undefined) logger.warn('PROXY_HTTP_API is set without PROXY_WEBRTC_SERVER: WHIP/WHEP answers name UDP port 18000, where nothing relays');
      }
    }
    if (c.srtPort !== undefined) logger.warn({ port: c.srtPort }, 'PROXY_SRT_SERVER is set, but SRT is not proxied yet: nothing listens there');
  } catch (err) {
    await out.close();
    throw err;
  }
  return out;
}
