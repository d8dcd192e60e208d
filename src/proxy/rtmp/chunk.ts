/**
 * RTMP chunk stream: an incremental reader (basic header fmt 0-3, 1/2/3-byte chunk stream ids,
 * extended timestamps, message reassembly across interleaved chunks, the peer's Set Chunk Size
 * and Abort) and a writer for the few messages the proxy sends itself. Pure: no I/O.
 */

/** Message type ids. */
export const MSG = {
  SET_CHUNK_SIZE: 1,
  ABORT: 2,
  ACK: 3,
  USER_CONTROL: 4,
  WINDOW_ACK_SIZE: 5,
  SET_PEER_BANDWIDTH: 6,
  AUDIO: 8,
  VIDEO: 9,
  DATA_AMF3: 15,
  COMMAND_AMF3: 17,
  DATA_AMF0: 18,
  COMMAND_AMF0: 20,
} as const;

export const DEFAULT_CHUNK_SIZE = 128;
/** Largest chunk size accepted (the spec's effective maximum: message lengths are 24-bit). */
export const MAX_CHUNK_SIZE = 0xffffff;

export interface RtmpMessage {
  /** Chunk stream id the message arrived on (or is sent on). */
  csid: number;
  timestamp: number;
  typeId: number;
  /** Message stream id. */
  streamId: number;
  payload: Buffer;
}

/** A chunk stream the reader cannot follow: a protocol violation or a limit exceeded. */
export class RtmpChunkError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RtmpChunkError';
  }
}

export interface ChunkReaderOptions {
  /** Largest message accepted (bytes); larger ones fail with RtmpChunkError. Default 16 MiB. */
  maxMessageSize?: number;
  /** Most distinct chunk stream ids tracked at once. Default 64. */
  maxChunkStreams?: number;
}

interface StreamState {
  timestamp: number;
  /** The last fmt 1/2 delta (or the fmt 0 timestamp): what a fmt 3 new message adds. */
  delta: number;
  length: number;
  typeId: number;
  streamId: number;
  /** The last fmt 0/1/2 header carried an extended timestamp. */
  extended: boolean;
  /** The raw extended timestamp value last read (fmt 3 chunks may repeat it). */
  extendedValue: number;
  /** Parts of the message being reassembled. */
  parts: Buffer[];
  received: number;
}

/**
 * Incremental chunk stream reader: `push` bytes, then `next()` until it returns undefined.
 * Bytes are consumed only when a whole chunk is available, so `rest()` after any `next()` is
 * exactly the peer's bytes not yet parsed (what a relay must forward unchanged).
 */
export class ChunkReader {
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;
  private size = DEFAULT_CHUNK_SIZE;
  private readonly streams = new Map<number, StreamState>();
  private readonly maxMessageSize: number;
  private readonly maxChunkStreams: number;
  private total = 0;
  private failed: RtmpChunkError | undefined;

  constructor(opts: ChunkReaderOptions = {}) {
    this.maxMessageSize = opts.maxMessageSize ?? 16 * 1024 * 1024;
    this.maxChunkStreams = opts.maxChunkStreams ?? 64;
  }

  /** The chunk size the peer currently uses (changed by its Set Chunk Size messages). */
  get chunkSize(): number {
    return this.size;
  }

  /** Bytes consumed (parsed into chunks) so far. */
  get consumed(): number {
    return this.total;
  }

  /** True while some chunk stream holds part of a message. */
  get midMessage(): boolean {
    for (const s of this.streams.values()) if (s.received > 0) return true;
    return false;
  }

  push(data: Buffer): void {
    if (data.length === 0) return;
    if (this.pos >= this.buf.length) {
      this.buf = data;
      this.pos = 0;
    } else {
      this.buf = Buffer.concat([this.buf.subarray(this.pos), data]);
      this.pos = 0;
    }
  }

  /** Bytes pushed but not yet consumed. */
  rest(): Buffer {
    return this.buf.subarray(this.pos);
  }

  /** The next complete message, or undefined when more bytes are needed. Throws RtmpChunkError. */
  next(): RtmpMessage | undefined {
    if (this.failed) throw this.failed;
    try {
      for (;;) {
        const r = this.chunk();
        if (r === NEED_MORE) return undefined;
        if (r !== undefined) return r;
      }
    } catch (err) {
      this.failed = err instanceof RtmpChunkError ? err : new RtmpChunkError(String(err));
      throw this.failed;
    }
  }

  /** Parses one chunk: NEED_MORE (nothing consumed), undefined (a chunk, message incomplete) or a message. */
  private chunk(): RtmpMessage | undefined | typeof NEED_MORE {
    const b = this.buf;
    let p = this.pos;
    const avail = b.length - p;
    if (avail < 1) return NEED_MORE;
    const first = b[p]!;
    const fmt = first >> 6;
    let csid = first & 0x3f;
    p++;
    if (csid === 0) {
      if (b.length - p < 1) return NEED_MORE;
      csid = 64 + b[p]!;
      p++;
    } else if (csid === 1) {
      if (b.length - p < 2) return NEED_MORE;
      csid = 64 + b[p]! + b[p + 1]! * 256;
      p += 2;
    }
    const headerLen = fmt === 0 ? 11 : fmt === 1 ? 7 : fmt === 2 ? 3 : 0;
    if (b.length - p < headerLen) return NEED_MORE;

    let st = this.streams.get(csid);
    if (!st) {
      if (fmt !== 0) throw new RtmpChunkError(`chunk stream ${csid} starts with a fmt ${fmt} header`);
      if (this.streams.size >= this.maxChunkStreams) throw new RtmpChunkError(`more than ${this.maxChunkStreams} chunk streams`);
    }
    const startsMessage = !st || st.received === 0;
    if (!startsMessage && fmt !== 3) {
      // A new header mid-message: the spec does not allow it; most peers never do it.
      throw new RtmpChunkError(`fmt ${fmt} header on chunk stream ${csid} in the middle of a message`);
    }

    let tsField = 0;
    let length = st?.length ?? 0;
    let typeId = st?.typeId ?? 0;
    let streamId = st?.streamId ?? 0;
    if (fmt <= 2) {
      tsField = b.readUIntBE(p, 3);
      if (fmt <= 1) {
        length = b.readUIntBE(p + 3, 3);
        typeId = b[p + 6]!;
        if (fmt === 0) streamId = b.readUInt32LE(p + 7);
      }
    }
    p += headerLen;

    let extended = st?.extended ?? false;
    let extValue = st?.extendedValue ?? 0;
    if (fmt <= 2) {
      extended = tsField === 0xffffff;
      if (extended) {
        if (b.length - p < 4) return NEED_MORE;
        extValue = b.readUInt32BE(p);
        tsField = extValue;
        p += 4;
      }
    } else if (extended) {
      // fmt 3 after an extended header: the spec says the extended timestamp repeats; some
      // encoders omit it on continuation chunks. Take the 4 bytes only when they repeat it.
      if (b.length - p < 4) return NEED_MORE;
      if (startsMessage || b.readUInt32BE(p) === extValue) p += 4;
    }

    if (startsMessage && length > this.maxMessageSize) throw new RtmpChunkError(`message of ${length} bytes on chunk stream ${csid} (max ${this.maxMessageSize})`);
    const received = startsMessage ? 0 : st!.received;
    const take = Math.min(this.size, length - received);
    if (b.length - p < take) return NEED_MORE;

    // The whole chunk is here: commit.
    if (!st) {
      st = { timestamp: 0, delta: 0, length, typeId, streamId, extended, extendedValue: extValue, parts: [], received: 0 };
      this.streams.set(csid, st);
    }
    if (startsMessage) {
      if (fmt === 0) {
        st.timestamp = tsField;
        st.delta = tsField;
      } else if (fmt === 1 || fmt === 2) {
        st.delta = tsField;
        st.timestamp = (st.timestamp + tsField) >>> 0;
      } else {
        st.timestamp = (st.timestamp + st.delta) >>> 0;
      }
      st.length = length;
      st.typeId = typeId;
      st.streamId = streamId;
      st.extended = extended;
      st.extendedValue = extValue;
    }
    if (take > 0) st.parts.push(b.subarray(p, p + take));
    st.received += take;
    p += take;
    this.total += p - this.pos;
    this.pos = p;
    if (st.received < st.length) return undefined;

    const payload = st.parts.length === 1 ? Buffer.from(st.parts[0]!) : Buffer.concat(st.parts);
    st.parts = [];
    st.received = 0;
    const msg: RtmpMessage = { csid, timestamp: st.timestamp, typeId: st.typeId, streamId: st.streamId, payload };
    this.control(msg);
    return msg;
  }

  /** Applies the protocol control messages that change how the following chunks parse. */
  private control(msg: RtmpMessage): void {
    if (msg.typeId === MSG.SET_CHUNK_SIZE) {
      if (msg.payload.length < 4) throw new RtmpChunkError('short Set Chunk Size message');
      const n = msg.payload.readUInt32BE(0) & 0x7fffffff;
      if (n < 1 || n > MAX_CHUNK_SIZE) throw new RtmpChunkError(`invalid chunk size ${n}`);
      this.size = n;
    } else if (msg.typeId === MSG.ABORT) {
      if (msg.payload.length < 4) throw new RtmpChunkError('short Abort message');
      const s = this.streams.get(msg.payload.readUInt32BE(0));
      if (s) {
        s.parts = [];
        s.received = 0;
      }
    }
  }
}

const NEED_MORE = Symbol('need-more');

/** Basic header bytes for `fmt` and `csid` (2..65599). */
export function basicHeader(fmt: number, csid: number): Buffer {
  if (!Number.isInteger(csid) || csid < 2 || csid > 65599) throw new RangeError(`chunk stream id ${csid} out of range`);
  if (csid < 64) return Buffer.from([(fmt << 6) | csid]);
  if (csid < 320) return Buffer.from([fmt << 6, csid - 64]);
  const v = csid - 64;
  return Buffer.from([(fmt << 6) | 1, v & 0xff, v >> 8]);
}

/**
 * Chunks the proxy's own messages: the first chunk of every message with a full (fmt 0)
 * header, continuation chunks fmt 3 (repeating the extended timestamp when there is one).
 */
export class ChunkWriter {
  private size = DEFAULT_CHUNK_SIZE;

  get chunkSize(): number {
    return this.size;
  }

  /** The bytes of `msg` chunked at the current chunk size. */
  write(msg: RtmpMessage): Buffer {
    const ts = msg.timestamp >>> 0;
    const extended = ts >= 0xffffff;
    const len = msg.payload.length;
    if (len > 0xffffff) throw new RangeError(`message of ${len} bytes is too long for RTMP`);
    const head = Buffer.alloc(11);
    head.writeUIntBE(extended ? 0xffffff : ts, 0, 3);
    head.writeUIntBE(len, 3, 3);
    head[6] = msg.typeId;
    head.writeUInt32LE(msg.streamId >>> 0, 7);
    const ext = Buffer.alloc(extended ? 4 : 0);
    if (extended) ext.writeUInt32BE(ts);
    const parts: Buffer[] = [basicHeader(0, msg.csid), head, ext];
    const cont = Buffer.concat([basicHeader(3, msg.csid), ext]);
    for (let off = 0; off < len || off === 0; off += this.size) {
      if (off > 0) parts.push(cont);
      parts.push(msg.payload.subarray(off, Math.min(len, off + this.size)));
      if (len === 0) break;
    }
    return Buffer.concat(parts);
  }

  /** A Set Chunk Size message; the writer uses `n` for everything written after it. */
  setChunkSize(n: number): Buffer {
    if (!Number.isInteger(n) || n < 1 || n > MAX_CHUNK_SIZE) throw new RangeError(`invalid chunk size ${n}`);
    const out = this.write(control(MSG.SET_CHUNK_SIZE, u32(n)));
    this.size = n;
    return out;
  }
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

function control(typeId: number, payload: Buffer): RtmpMessage {
  return { csid: 2, timestamp: 0, typeId, streamId: 0, payload };
}

/** Window Acknowledgement Size (type 5). */
export function windowAckSize(n: number): RtmpMessage {
  return control(MSG.WINDOW_ACK_SIZE, u32(n));
}

/** Set Peer Bandwidth (type 6); limit type 0 hard, 1 soft, 2 dynamic. */
export function setPeerBandwidth(n: number, limitType: 0 | 1 | 2): RtmpMessage {
  return control(MSG.SET_PEER_BANDWIDTH, Buffer.concat([u32(n), Buffer.from([limitType])]));
}

/** User Control (type 4) event with a 4-byte argument (Stream Begin = 0, ...). */
export function userControl(event: number, value: number): RtmpMessage {
  const b = Buffer.alloc(6);
  b.writeUInt16BE(event);
  b.writeUInt32BE(value >>> 0, 2);
  return control(MSG.USER_CONTROL, b);
}
