/**
 * The WebRTC UDP proxy (SRS proxy's PROXY_WEBRTC_SERVER, seed 003): one UDP port in front of every
 * origin's WebRTC port. The WHIP/WHEP proxy rewrote the answers' candidates to this port; a client's
 * first packet is its ICE connectivity check, a STUN Binding request whose USERNAME is
 * `<answer ufrag>:<offer ufrag>`, and the answer's ufrag names the session, so the origin.
 *
 * Per client address (ip:port): a session with a socket of its own toward the origin, so the
 * origin sees one peer per client and its replies on that socket go back to that client from the
 * main socket. After the first Binding request every packet of the client (STUN, DTLS, SRTP/SRTCP)
 * goes through its session unchanged. Sessions end after `idleTimeoutMs` without a packet either way.
 *
 * Never crashes on input: a packet from an unknown address that is not a well-formed Binding request
 * with a USERNAME, or whose ufrag is unknown, is dropped (counted in `stats`).
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { decodeMessage } from '../../probes/stun.js';

export interface UdpAddress {
  host: string;
  port: number;
}

/** The origin WebRTC UDP address of a session, by the answer's ICE ufrag; undefined: unknown. */
export type UfragResolver = (ufrag: string) => Promise<UdpAddress | undefined>;

/** The subset of a pino logger the proxy uses. */
export interface RtcUdpProxyLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

export interface RtcUdpProxyOptions {
  resolve: UfragResolver;
  /** Listen address; default 0.0.0.0 (an IPv6 address listens on udp6). */
  host?: string;
  /** Listen port (SRS proxy's PROXY_WEBRTC_SERVER); default 18000, 0 for any free port. */
  port?: number;
  /** A session without a packet either way for this long is closed; default 30 000 ms. */
  idleTimeoutMs?: number;
  /** Most concurrent sessions (each holds a socket); default 10 000. New clients beyond are dropped. */
  maxSessions?: number;
  /** Most sessions being resolved at once (new clients beyond are dropped; ICE retransmits); default 1 000. */
  maxPending?: number;
  /** Packets of a client kept while its session is being resolved; default 8. */
  maxQueued?: number;
  logger?: RtcUdpProxyLogger;
}

export interface RtcUdpProxyStats {
  /** Sessions created so far. */
  sessions: number;
  /** Packets from unknown addresses that were not STUN Binding requests with a USERNAME. */
  droppedUnknown: number;
  /** Binding requests whose ufrag no origin session is known for. */
  droppedUnresolved: number;
  /** New clients refused because `maxSessions` or `maxPending` was reached. */
  droppedFull: number;
  /** Packets relayed client → origin and origin → client. */
  toOrigin: number;
  toClient: number;
}

interface Session {
  client: UdpAddress;
  origin: UdpAddress;
  ufrag: string;
  socket: Socket;
  lastSeen: number;
}

interface Pending {
  queue: Buffer[];
}

const noop = (): void => {};
const silent: RtcUdpProxyLogger = { info: noop, warn: noop, debug: noop };

const STUN_BINDING = 0x001;
const ATTR_USERNAME = 0x0006;
const MAX_UFRAG = 256;

/**
 * The answer's ufrag from a STUN Binding request's USERNAME (`<answer ufrag>:<offer ufrag>`);
 * undefined for anything else. Never throws.
 */
export function bindingUfrag(packet: Buffer): string | undefined {
  // RFC 7983 demultiplexing: STUN starts with 0..3.
  if (packet.length < 20 || packet[0]! > 3) return undefined;
  const msg = decodeMessage(packet);
  if (!msg || msg.class !== 'request' || msg.method !== STUN_BINDING) return undefined;
  const attr = msg.attributes.find((a) => a.type === ATTR_USERNAME);
  if (!attr || attr.value.length === 0 || attr.value.length > 513) return undefined;
  const username = attr.value.toString('utf8');
  const colon = username.indexOf(':');
  if (colon <= 0 || colon > MAX_UFRAG) return undefined;
  const ufrag = username.slice(0, colon);
  // ICE ufrags are ice-chars (ALPHA / DIGIT / "+" / "/"); be lenient but refuse controls and spaces.
  for (let i = 0; i < ufrag.length; i++) {
    const c = ufrag.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) return undefined;
  }
  return ufrag;
}

export class RtcUdpProxy {
  private readonly socket: Socket;
  private readonly sessions = new Map<string, Session>();
  private readonly pending = new Map<string, Pending>();
  private readonly log: RtcUdpProxyLogger;
  private readonly idleTimeoutMs: number;
  private readonly maxSessions: number;
  private readonly maxPending: number;
  private readonly maxQueued: number;
  private sweeper: NodeJS.Timeout | undefined;
  private closed = false;
  readonly stats: RtcUdpProxyStats = { sessions: 0, droppedUnknown: 0, droppedUnresolved: 0, droppedFull: 0, toOrigin: 0, toClient: 0 };

  constructor(private readonly opts: RtcUdpProxyOptions) {
    this.log = opts.logger ?? silent;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 30_000;
    this.maxSessions = opts.maxSessions ?? 10_000;
    this.maxPending = opts.maxPending ?? 1_000;
    this.maxQueued = opts.maxQueued ?? 8;
    if (!Number.isInteger(this.idleTimeoutMs) || this.idleTimeoutMs < 1) throw new RangeError('idleTimeoutMs: must be an integer >= 1');
    this.socket = createSocket({ type: isIP(opts.host ?? '') === 6 ? 'udp6' : 'udp4' });
    this.socket.on('error', (err) => this.log.warn({ err: err.message }, 'webrtc udp proxy socket error'));
    this.socket.on('message', (packet, rinfo) => this.onClientPacket(packet, rinfo));
  }

  /** Binds the UDP port; resolves with the bound address. */
  listen(): Promise<UdpAddress> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.socket.once('error', onError);
      this.socket.bind(this.opts.port ?? 18000, this.opts.host ?? '0.0.0.0', () => {
        this.socket.off('error', onError);
        const a = this.socket.address();
        const every = Math.max(10, Math.min(5_000, Math.floor(this.idleTimeoutMs / 3)));
        this.sweeper = setInterval(() => this.sweep(), every);
        this.sweeper.unref();
        this.log.info({ host: a.address, port: a.port }, 'webrtc udp proxy listening');
        resolve({ host: a.address, port: a.port });
      });
    });
  }

  /** The bound port (after listen). */
  get port(): number {
    try {
      return this.socket.address().port;
    } catch {
      return 0;
    }
  }

  /** Open sessions. */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /** The open sessions (client, origin, ufrag), for tests and the admin API. */
  listSessions(): { client: UdpAddress; origin: UdpAddress; ufrag: string; idleMs: number }[] {
    const now = Date.now();
    return [...this.sessions.values()].map((s) => ({ client: { ...s.client }, origin: { ...s.origin }, ufrag: s.ufrag, idleMs: now - s.lastSeen }));
  }

  /** Closes the port and every session. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.sweeper) clearInterval(this.sweeper);
    this.pending.clear();
    for (const key of [...this.sessions.keys()]) this.endSession(key, 'proxy closed');
    await new Promise<void>((resolve) => {
      try {
        this.socket.close(() => resolve());
      } catch {
        resolve(); // never bound
      }
    });
  }

  private onClientPacket(packet: Buffer, rinfo: RemoteInfo): void {
    if (this.closed) return;
    const key = `${rinfo.address}|${rinfo.port}`;
    const session = this.sessions.get(key);
    if (session) {
      session.lastSeen = Date.now();
      this.stats.toOrigin++;
      session.socket.send(packet, session.origin.port, session.origin.host, (err) => {
        if (err) this.log.debug({ err: err.message, ufrag: session.ufrag }, 'webrtc udp send to origin failed');
      });
      return;
    }
    const waiting = this.pending.get(key);
    if (waiting) {
      if (waiting.queue.length < this.maxQueued) waiting.queue.push(packet);
      return;
    }
    const ufrag = bindingUfrag(packet);
    if (ufrag === undefined) {
      this.stats.droppedUnknown++;
      return;
    }
    if (this.sessions.size + this.pending.size >= this.maxSessions || this.pending.size >= this.maxPending) {
      this.stats.droppedFull++;
      this.log.debug({ client: `${rinfo.address}:${rinfo.port}` }, 'webrtc udp proxy full: new client dropped');
      return;
    }
    const p: Pending = { queue: [packet] };
    this.pending.set(key, p);
    const client = { host: rinfo.address, port: rinfo.port };
    this.opts
      .resolve(ufrag)
      .then(toIp)
      .then(
        (origin) => this.open(key, p, client, ufrag, origin),
        (err: unknown) => {
          this.log.debug({ ufrag, err: String(err) }, 'webrtc ufrag lookup failed');
          this.open(key, p, client, ufrag, undefined);
        },
      )
      .catch((err: unknown) => this.log.warn({ err: String(err) }, 'webrtc udp session setup failed'));
  }

  private open(key: string, p: Pending, client: UdpAddress, ufrag: string, origin: UdpAddress | undefined): void {
    if (this.pending.get(key) !== p) return; // closed meanwhile
    this.pending.delete(key);
    if (this.closed) return;
    if (!origin) {
      this.stats.droppedUnresolved++;
      this.log.debug({ ufrag, client: `${client.host}:${client.port}` }, 'webrtc binding request for an unknown ufrag dropped');
      return;
    }
    const socket = createSocket({ type: isIP(origin.host) === 6 ? 'udp6' : 'udp4' });
    const session: Session = { client, origin, ufrag, socket, lastSeen: Date.now() };
    socket.on('error', (err) => {
      this.log.debug({ err: err.message, ufrag }, 'webrtc udp session socket error');
      this.endSession(key, 'socket error', session);
    });
    socket.on('message', (packet, from) => {
      // Only the origin may speak on a session socket.
      if (from.port !== origin.port || !sameHost(from.address, origin.host)) return;
      session.lastSeen = Date.now();
      this.stats.toClient++;
      this.socket.send(packet, client.port, client.host, (err) => {
        if (err) this.log.debug({ err: err.message, ufrag }, 'webrtc udp send to client failed');
      });
    });
    this.sessions.set(key, session);
    this.stats.sessions++;
    this.log.debug({ ufrag, client: `${client.host}:${client.port}`, origin: `${origin.host}:${origin.port}` }, 'webrtc udp session opened');
    // Bound implicitly by the first send (an ephemeral port on every interface).
    for (const packet of p.queue) {
      this.stats.toOrigin++;
      socket.send(packet, origin.port, origin.host, (err) => {
        if (err) this.log.debug({ err: err.message, ufrag }, 'webrtc udp send to origin failed');
      });
    }
  }

  private endSession(key: string, reason: string, only?: Session): void {
    const s = this.sessions.get(key);
    if (!s || (only && s !== only)) return;
    this.sessions.delete(key);
    try {
      s.socket.close();
    } catch {
      // already closed
    }
    this.log.debug({ ufrag: s.ufrag, client: `${s.client.host}:${s.client.port}`, reason }, 'webrtc udp session closed');
  }

  private sweep(): void {
    const cutoff = Date.now() - this.idleTimeoutMs;
    for (const [key, s] of this.sessions) if (s.lastSeen < cutoff) this.endSession(key, 'idle');
  }
}

/** An origin named by a host name is resolved once per session: replies are matched by address. */
async function toIp(origin: UdpAddress | undefined): Promise<UdpAddress | undefined> {
  if (!origin || isIP(origin.host) !== 0) return origin;
  const { address } = await lookup(origin.host);
  return { host: address, port: origin.port };
}

function sameHost(a: string, b: string): boolean {
  if (a === b) return true;
  // An IPv4 origin seen through a dual-stack socket.
  return a.replace(/^::ffff:/i, '') === b.replace(/^::ffff:/i, '');
}
