/**
 * A media-aware RTMP proxy (SRS proxy's RTMP server, seed 003): it speaks RTMP to the client
 * until `publish` or `play` names the stream, asks `resolve` which origin holds that stream,
 * connects there, replays the client's session and then relays bytes both ways unchanged.
 *
 * Per client:
 * 1. simple handshake as server;
 * 2. command phase: answers `connect` (Window Ack Size, Set Peer Bandwidth, Set Chunk Size,
 *    `_result` NetConnection.Connect.Success), `releaseStream`, `FCPublish`, `createStream`
 *    (`_result`, stream id 1) itself, until `publish`/`play`. Every byte the client sent after
 *    its C2 is kept (capped by `maxCommandBytes`);
 * 3. `resolve(vhost/app/stream, mode)`; refused → `onStatus` error (NetStream.Publish.BadName /
 *    NetStream.Play.StreamNotFound) and close;
 * 4. origin: TCP connect, simple handshake as client, then the client's kept bytes verbatim:
 *    connect (same tcUrl/app), releaseStream/FCPublish, createStream, publish/play, and the
 *    client's own Set Chunk Size messages in place, so from the origin's point of view the
 *    chunk stream (chunk size, header compression state) is exactly the client's;
 * 5. the origin's replies are read as messages: answers to transactions the proxy already
 *    answered (matched by transaction id), its Window Ack Size / Set Peer Bandwidth and
 *    `onBWDone`/`onFCPublish` are swallowed (an `_error` there fails the session, as does a
 *    createStream stream id other than 1); anything else is re-sent to the client with the
 *    origin's chunk stream id, timestamp, type and stream id, up to and including the first
 *    `onStatus`;
 * 6. switch: the client is told the origin's chunk size (Set Chunk Size) if it differs from the
 *    proxy's, then both directions are piped unchanged.
 *
 * Raw relay origin→client assumes the origin starts each message on a chunk stream the client
 * has not seen from it with a full (fmt 0) header, which nginx-rtmp and SRS do.
 */
import { connect as netConnect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { Amf0Error, asObject, decodeAmf0, encodeAmf0, type Amf0Value } from './amf0.js';
import { ChunkReader, ChunkWriter, MSG, RtmpChunkError, setPeerBandwidth, windowAckSize, type RtmpMessage } from './chunk.js';
import { FeedClosedError, SocketFeed } from './feed.js';
import { clientHandshake, RtmpHandshakeError, serverHandshake } from './handshake.js';
import { streamKey } from './key.js';

export type RtmpMode = 'publish' | 'play';

/** Where the stream lives; rejecting refuses the client (the error message is its reason). */
export type RtmpResolve = (key: string, mode: RtmpMode) => Promise<{ host: string; port: number }>;

/** The subset of a pino logger the proxy uses. */
export interface RtmpProxyLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

export interface RtmpProxyOptions {
  resolve: RtmpResolve;
  /** Listen address; default 0.0.0.0. */
  host?: string;
  /** Listen port (SRS proxy's PROXY_RTMP_SERVER); default 11935, 0 for any free port. */
  port?: number;
  logger?: RtmpProxyLogger;
  /** Handshake + commands + origin setup must finish within this; default 10 000 ms. */
  commandTimeoutMs?: number;
  /** TCP connect to the origin; default 5 000 ms (within the command timeout). */
  connectTimeoutMs?: number;
  /** Largest message accepted from the client during the command phase; default 64 KiB. */
  maxMessageSize?: number;
  /** Most bytes kept from one client during the command phase; default 256 KiB. */
  maxCommandBytes?: number;
  /** Most concurrent client connections; default 10 000. */
  maxConnections?: number;
  /** Chunk size the proxy announces to clients; default 4096. */
  chunkSize?: number;
}

/** Counters for metrics and tests. */
export interface RtmpProxyStats {
  accepted: number;
  relaying: number;
  refused: number;
  failed: number;
  /** Bytes relayed from clients to origins and back, once relaying (the command phase not counted). */
  bytesFromClients: number;
  bytesToClients: number;
}

const noop = (): void => {};
const silent: RtmpProxyLogger = { info: noop, warn: noop, debug: noop };

const CSID_COMMAND = 3;
const CSID_STATUS = 5;
const STREAM_ID = 1;
const WINDOW = 2_500_000;

/** A session ended on purpose with a reason worth a log line. */
class SessionError extends Error {
  constructor(
    message: string,
    readonly level: 'info' | 'warn' | 'debug' = 'info',
  ) {
    super(message);
    this.name = 'SessionError';
  }
}

interface ConnectInfo {
  tcUrl: string | undefined;
  app: string | undefined;
}

interface Target {
  mode: RtmpMode;
  name: string;
  streamId: number;
}

function command(msg: RtmpMessage): Amf0Value[] | undefined {
  if (msg.typeId === MSG.COMMAND_AMF0) return decodeAmf0(msg.payload);
  // AMF3 command messages carry AMF0 after a format byte.
  if (msg.typeId === MSG.COMMAND_AMF3 && msg.payload.length > 0) return decodeAmf0(msg.payload.subarray(1));
  return undefined;
}

function cmd(values: Amf0Value[], streamId: number, csid = CSID_COMMAND): RtmpMessage {
  return { csid, timestamp: 0, typeId: MSG.COMMAND_AMF0, streamId, payload: encodeAmf0(...values) };
}

function str(v: Amf0Value): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

export class RtmpProxy {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly log: RtmpProxyLogger;
  private readonly commandTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly maxMessageSize: number;
  private readonly maxCommandBytes: number;
  private readonly chunkSize: number;
  private closed = false;
  readonly stats: RtmpProxyStats = { accepted: 0, relaying: 0, refused: 0, failed: 0, bytesFromClients: 0, bytesToClients: 0 };

  constructor(private readonly opts: RtmpProxyOptions) {
    this.log = opts.logger ?? silent;
    this.commandTimeoutMs = opts.commandTimeoutMs ?? 10_000;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 5_000;
    this.maxMessageSize = opts.maxMessageSize ?? 64 * 1024;
    this.maxCommandBytes = opts.maxCommandBytes ?? 256 * 1024;
    this.chunkSize = opts.chunkSize ?? 4096;
    this.server = createServer((socket) => this.accept(socket));
    this.server.maxConnections = opts.maxConnections ?? 10_000;
    this.server.on('error', (err) => this.log.warn({ err }, 'rtmp proxy listener error'));
  }

  /** Starts listening; resolves with the bound address. */
  listen(): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen(this.opts.port ?? 11935, this.opts.host ?? '0.0.0.0', () => {
        this.server.off('error', onError);
        const a = this.server.address() as AddressInfo;
        this.log.info({ host: a.address, port: a.port }, 'rtmp proxy listening');
        resolve({ host: a.address, port: a.port });
      });
    });
  }

  /** The bound port (after listen). */
  get port(): number {
    return (this.server.address() as AddressInfo | null)?.port ?? 0;
  }

  /** Open client and origin sockets. */
  get connections(): number {
    return this.sockets.size;
  }

  /** Stops listening and drops every connection (clients and origins). */
  async close(): Promise<void> {
    this.closed = true;
    const done = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    if (this.server.listening) await done;
  }

  private own(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    // Every socket has an error listener for its whole life: no error may crash the process.
    socket.on('error', (err) => this.log.debug({ err: err.message }, 'rtmp socket error'));
  }

  private accept(socket: Socket): void {
    if (this.closed) return void socket.destroy();
    this.own(socket);
    this.stats.accepted++;
    socket.setNoDelay(true);
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    this.session(socket, peer).catch((err: unknown) => {
      // session() handles its own errors; this is a last resort.
      this.log.warn({ peer, err: String(err) }, 'rtmp session crashed');
      socket.destroy();
    });
  }

  private async session(client: Socket, peer: string): Promise<void> {
    let origin: Socket | undefined;
    let relaying = false;
    const timer = setTimeout(() => {
      if (relaying) return;
      this.log.info({ peer }, 'rtmp command phase timed out');
      client.destroy();
      origin?.destroy();
    }, this.commandTimeoutMs);
    timer.unref();
    client.once('close', () => origin?.destroy());
    const feed = new SocketFeed(client, this.maxCommandBytes);
    try {
      const epoch = Date.now();
      await serverHandshake(feed, client, epoch);
      const phase = await this.commandPhase(feed, client);
      const { target, info, raw, answered, createStreamTids, writer } = phase;
      const key = streamKey(info.tcUrl, info.app, target.name);
      client.pause();

      let dest: { host: string; port: number };
      try {
        if (splitName(target.name) === '') throw new Error('empty stream name');
        dest = await this.opts.resolve(key, target.mode);
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err);
        this.stats.refused++;
        this.log.info({ peer, key, mode: target.mode, reason }, 'rtmp stream refused');
        this.refuse(client, writer, target, reason);
        return;
      }
      if (client.destroyed) return;

      origin = await this.dial(dest.host, dest.port);
      const up: Socket = origin;
      if (client.destroyed) return void up.destroy();
      const upFeed = new SocketFeed(up, 8 * 1024 * 1024);
      await clientHandshake(upFeed, up, epoch);
      // The client's session, verbatim: the origin sees the client's chunk stream.
      raw.push(feed.detach());
      up.write(Buffer.concat(raw));

      const upReader = new ChunkReader({ maxMessageSize: 4 * 1024 * 1024 });
      for (;;) {
        const m = upReader.next();
        if (!m) {
          upReader.push(await upFeed.readSome());
          continue;
        }
        if (m.typeId === MSG.SET_CHUNK_SIZE || m.typeId === MSG.ABORT || m.typeId === MSG.ACK) continue;
        if (m.typeId === MSG.WINDOW_ACK_SIZE || m.typeId === MSG.SET_PEER_BANDWIDTH) continue;
        const values = command(m);
        const name = values ? str(values[0]) : undefined;
        if (values && (name === '_result' || name === '_error') && typeof values[1] === 'number' && answered.has(values[1])) {
          if (name === '_error') throw new SessionError(`origin ${dest.host}:${dest.port} refused ${describe(values)}`, 'warn');
          if (createStreamTids.has(values[1]) && values[3] !== STREAM_ID) {
            throw new SessionError(`origin created stream id ${String(values[3])}, the client was given ${STREAM_ID}`, 'warn');
          }
          continue;
        }
        if (name === 'onBWDone' || name === 'onFCPublish') continue;
        client.write(writer.write(m));
        if (name === 'onStatus') break;
      }
      if (upReader.midMessage) throw new SessionError('origin interleaved a message across the switch to relay', 'warn');

      // Switch to relay: the client must parse the origin's chunks at the origin's chunk size.
      if (writer.chunkSize !== upReader.chunkSize) client.write(writer.setChunkSize(upReader.chunkSize));
      const pending = Buffer.concat([upReader.rest(), upFeed.detach()]);
      if (pending.length > 0) client.write(pending);
      relaying = true;
      clearTimeout(timer);
      if (client.destroyed || up.destroyed) {
        client.destroy();
        up.destroy();
        return;
      }
      this.stats.relaying++;
      const both = (): void => {
        client.destroy();
        up.destroy();
      };
      client.once('close', both);
      up.once('close', both);
      client.once('end', () => up.end());
      up.once('end', () => client.end());
      client.on('data', (d: Buffer) => (this.stats.bytesFromClients += d.length));
      up.on('data', (d: Buffer) => (this.stats.bytesToClients += d.length));
      client.pipe(up, { end: false });
      up.pipe(client, { end: false });
      client.resume();
      this.log.info({ peer, key, mode: target.mode, origin: `${dest.host}:${dest.port}` }, 'rtmp relaying');
      up.once('close', () => this.stats.relaying--);
    } catch (err) {
      this.stats.failed++;
      const msg = err instanceof Error ? err.message : String(err);
      const level = err instanceof SessionError ? err.level : err instanceof FeedClosedError ? 'debug' : 'info';
      const what =
        err instanceof RtmpHandshakeError || err instanceof RtmpChunkError || err instanceof Amf0Error ? 'rtmp protocol error' : 'rtmp session closed';
      this.log[level]({ peer, reason: msg }, what);
      client.destroy();
      origin?.destroy();
    } finally {
      if (!relaying) clearTimeout(timer);
    }
  }

  /** Reads the client's commands up to publish/play, answering the ones before it. */
  private async commandPhase(
    feed: SocketFeed,
    client: Socket,
  ): Promise<{ target: Target; info: ConnectInfo; raw: Buffer[]; answered: Set<number>; createStreamTids: Set<number>; writer: ChunkWriter }> {
    const reader = new ChunkReader({ maxMessageSize: this.maxMessageSize, maxChunkStreams: 16 });
    const writer = new ChunkWriter();
    const raw: Buffer[] = [];
    let rawBytes = 0;
    const answered = new Set<number>();
    const createStreamTids = new Set<number>();
    let info: ConnectInfo | undefined;
    const send = (m: RtmpMessage): void => void client.write(writer.write(m));
    for (;;) {
      const msg = reader.next();
      if (!msg) {
        const d = await feed.readSome();
        rawBytes += d.length;
        if (rawBytes > this.maxCommandBytes) throw new SessionError(`more than ${this.maxCommandBytes} bytes before publish/play`);
        raw.push(d);
        reader.push(d);
        continue;
      }
      const values = command(msg);
      if (!values) continue; // control and data messages: the origin gets them in the replay
      const name = str(values[0]);
      const tid = typeof values[1] === 'number' ? values[1] : 0;
      if (name === 'connect') {
        if (info) throw new SessionError('second connect');
        const obj = asObject(values[2] ?? null) ?? {};
        info = { tcUrl: str(obj.tcUrl), app: str(obj.app) };
        const enc = typeof obj.objectEncoding === 'number' ? obj.objectEncoding : 0;
        send(windowAckSize(WINDOW));
        send(setPeerBandwidth(WINDOW, 2));
        client.write(writer.setChunkSize(this.chunkSize));
        send(
          cmd(
            [
              '_result',
              tid,
              { fmsVer: 'FMS/3,0,1,123', capabilities: 31 },
              { level: 'status', code: 'NetConnection.Connect.Success', description: 'Connection succeeded.', objectEncoding: enc },
            ],
            msg.streamId,
          ),
        );
        answered.add(tid);
        continue;
      }
      if (!info) throw new SessionError(`${name ?? 'command'} before connect`);
      if (name === 'releaseStream' || name === 'FCPublish') {
        send(cmd(['_result', tid, null, undefined], msg.streamId));
        answered.add(tid);
      } else if (name === 'createStream') {
        send(cmd(['_result', tid, null, STREAM_ID], msg.streamId));
        answered.add(tid);
        createStreamTids.add(tid);
      } else if (name === 'publish' || name === 'play') {
        const streamName = str(values[3]);
        if (streamName === undefined) throw new SessionError(`${name} without a stream name`);
        return { target: { mode: name, name: streamName, streamId: msg.streamId }, info, raw, answered, createStreamTids, writer };
      }
      // Anything else (getStreamLength, _checkbw, ...) goes to the origin in the replay;
      // its answer is relayed back.
    }
  }

  /** Tells the client why its publish/play is refused, then closes. */
  private refuse(client: Socket, writer: ChunkWriter, target: Target, reason: string): void {
    const code = target.mode === 'publish' ? 'NetStream.Publish.BadName' : 'NetStream.Play.StreamNotFound';
    const status = cmd(['onStatus', 0, null, { level: 'error', code, description: reason }], target.streamId, CSID_STATUS);
    client.end(writer.write(status));
    // A client that never closes its side goes after a grace period.
    setTimeout(() => client.destroy(), 2000).unref();
  }

  /** TCP connection to the origin, within connectTimeoutMs. */
  private dial(host: string, port: number): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const s = netConnect({ host, port });
      this.own(s);
      s.setNoDelay(true);
      const timer = setTimeout(() => {
        s.destroy();
        reject(new SessionError(`origin ${host}:${port} unreachable: connect timed out`, 'warn'));
      }, this.connectTimeoutMs);
      const onError = (err: Error): void => {
        clearTimeout(timer);
        s.destroy();
        reject(new SessionError(`origin ${host}:${port} unreachable: ${err.message}`, 'warn'));
      };
      s.once('error', onError);
      s.once('connect', () => {
        clearTimeout(timer);
        s.off('error', onError);
        resolve(s);
      });
    });
  }
}

function splitName(name: string): string {
  const i = name.indexOf('?');
  return i < 0 ? name : name.slice(0, i);
}

function describe(values: Amf0Value[]): string {
  const info = asObject(values[3] ?? null);
  const code = info ? str(info.code) : undefined;
  const desc = info ? str(info.description) : undefined;
  return [code, desc].filter((x) => x !== undefined).join(': ') || 'the request';
}
