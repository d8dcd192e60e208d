import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { basicHeader, ChunkReader, ChunkWriter, MSG, RtmpChunkError, userControl, windowAckSize, type RtmpMessage } from '../../src/proxy/rtmp/chunk.js';

function readAll(reader: ChunkReader): RtmpMessage[] {
  const out: RtmpMessage[] = [];
  for (let m = reader.next(); m; m = reader.next()) out.push(m);
  return out;
}

/** Feeds `bytes` split at `cut` and returns every message. */
function readSplit(bytes: Buffer, cut: number): RtmpMessage[] {
  const r = new ChunkReader();
  r.push(bytes.subarray(0, cut));
  const out = readAll(r);
  r.push(bytes.subarray(cut));
  out.push(...readAll(r));
  if (r.rest().length !== 0 || r.consumed !== bytes.length) throw new Error(`left ${r.rest().length} byte(s) at cut ${cut}`);
  return out;
}

/** Messages as comparable strings: vitest compares Buffers byte by byte, slowly. */
const flat = (ms: RtmpMessage[]): string[] => ms.map((m) => `${m.csid}/${m.timestamp}/${m.typeId}/${m.streamId}/${m.payload.toString('hex')}`);

const msg = (csid: number, timestamp: number, typeId: number, streamId: number, payload: Buffer): RtmpMessage => ({ csid, timestamp, typeId, streamId, payload });

/** A hand-built stream exercising fmt 0-3, 1/2/3-byte csids, extended timestamps and interleaving. */
function handBuilt(): { bytes: Buffer; expected: RtmpMessage[] } {
  const p1 = Buffer.alloc(300, 1);
  const p2 = Buffer.alloc(10, 2);
  const p3 = Buffer.alloc(140, 3);
  const parts: Buffer[] = [];
  // csid 4, fmt 0, ts 1000, len 300 (3 chunks of 128), type 9, msid 1; interleaved with csid 70 (2-byte form).
  const h0 = Buffer.alloc(11);
  h0.writeUIntBE(1000, 0, 3);
  h0.writeUIntBE(300, 3, 3);
  h0[6] = 9;
  h0.writeUInt32LE(1, 7);
  parts.push(basicHeader(0, 4), h0, p1.subarray(0, 128));
  // csid 70: fmt 0, extended timestamp 0x01000000, len 10, type 8, msid 1.
  const h70 = Buffer.alloc(11);
  h70.writeUIntBE(0xffffff, 0, 3);
  h70.writeUIntBE(10, 3, 3);
  h70[6] = 8;
  h70.writeUInt32LE(1, 7);
  const ext = Buffer.alloc(4);
  ext.writeUInt32BE(0x01000000);
  parts.push(basicHeader(0, 70), h70, ext, p2);
  parts.push(basicHeader(3, 4), p1.subarray(128, 256), basicHeader(3, 4), p1.subarray(256));
  // csid 4, fmt 1: delta 40, len 10, type 9 → ts 1040.
  const h1 = Buffer.alloc(7);
  h1.writeUIntBE(40, 0, 3);
  h1.writeUIntBE(10, 3, 3);
  h1[6] = 9;
  parts.push(basicHeader(1, 4), h1, p2);
  // csid 4, fmt 2: delta 20 → ts 1060, same length/type.
  const h2 = Buffer.alloc(3);
  h2.writeUIntBE(20, 0, 3);
  parts.push(basicHeader(2, 4), h2, p2);
  // csid 4, fmt 3 new message: delta 20 again → ts 1080.
  parts.push(basicHeader(3, 4), p2);
  // csid 400 (3-byte form), fmt 0, len 140 → two chunks, the fmt 3 continuation without the (absent) extended ts.
  const h400 = Buffer.alloc(11);
  h400.writeUIntBE(5, 0, 3);
  h400.writeUIntBE(140, 3, 3);
  h400[6] = 18;
  h400.writeUInt32LE(1, 7);
  parts.push(basicHeader(0, 400), h400, p3.subarray(0, 128), basicHeader(3, 400), p3.subarray(128));
  // csid 70 fmt 3 new message after the extended header: extended ts repeated, delta = 0x01000000.
  parts.push(basicHeader(3, 70), ext, p2);
  return {
    bytes: Buffer.concat(parts),
    expected: [
      msg(70, 0x01000000, 8, 1, p2),
      msg(4, 1000, 9, 1, p1),
      msg(4, 1040, 9, 1, p2),
      msg(4, 1060, 9, 1, p2),
      msg(4, 1080, 9, 1, p2),
      msg(400, 5, 18, 1, p3),
      msg(70, 0x02000000, 8, 1, p2),
    ],
  };
}

describe('RTMP chunk reader', () => {
  it('encodes basic headers in 1, 2 and 3 bytes', () => {
    expect(basicHeader(0, 3)).toEqual(Buffer.from([0x03]));
    expect(basicHeader(1, 64)).toEqual(Buffer.from([0x40, 0]));
    expect(basicHeader(3, 319)).toEqual(Buffer.from([0xc0, 255]));
    expect(basicHeader(0, 320)).toEqual(Buffer.from([0x01, 0, 1]));
    expect(basicHeader(2, 65599)).toEqual(Buffer.from([0x81, 255, 255]));
  });

  it('parses fmt 0-3, 2/3-byte csids, extended timestamps and interleaving, split at every byte', () => {
    const { bytes, expected } = handBuilt();
    const want = flat(expected);
    for (let cut = 0; cut <= bytes.length; cut++) expect(flat(readSplit(bytes, cut))).toEqual(want);
  });

  it('parses byte by byte', () => {
    const { bytes, expected } = handBuilt();
    const r = new ChunkReader();
    const out: RtmpMessage[] = [];
    for (const b of bytes) {
      r.push(Buffer.from([b]));
      out.push(...readAll(r));
    }
    expect(out).toEqual(expected);
  });

  it('reads what the writer writes, with Set Chunk Size changes, split at every byte', () => {
    const w = new ChunkWriter();
    const payload = Buffer.from(Array.from({ length: 700 }, (_, i) => i & 0xff));
    const a = msg(3, 0, MSG.COMMAND_AMF0, 0, payload);
    const b = msg(6, 0x1234567, MSG.VIDEO, 1, payload.subarray(0, 333));
    const c = msg(5, 0, MSG.COMMAND_AMF0, 1, Buffer.alloc(0));
    const bytes = Buffer.concat([w.write(a), w.setChunkSize(100), w.write(b), w.setChunkSize(4096), w.write(c), w.write(windowAckSize(5000)), w.write(userControl(0, 1))]);
    const setSize = (n: number) => {
      const p = Buffer.alloc(4);
      p.writeUInt32BE(n);
      return msg(2, 0, MSG.SET_CHUNK_SIZE, 0, p);
    };
    const expected = [a, setSize(100), b, setSize(4096), c, windowAckSize(5000), userControl(0, 1)];
    const want = flat(expected);
    for (let cut = 0; cut <= bytes.length; cut++) expect(flat(readSplit(bytes, cut))).toEqual(want);
    const r = new ChunkReader();
    r.push(bytes);
    readAll(r);
    expect(r.chunkSize).toBe(4096);
  });

  it('round-trips random messages at random chunk sizes and splits (fast-check)', () => {
    const message = fc.record({
      csid: fc.integer({ min: 2, max: 65599 }),
      timestamp: fc.oneof(fc.integer({ min: 0, max: 0xfffffe }), fc.integer({ min: 0xffffff, max: 0xffffffff })),
      typeId: fc.constantFrom(8, 9, 18, 20),
      streamId: fc.integer({ min: 0, max: 0xffffffff }),
      payload: fc.uint8Array({ maxLength: 600 }).map((u) => Buffer.from(u)),
    });
    fc.assert(
      fc.property(fc.array(message, { maxLength: 6 }), fc.integer({ min: 1, max: 300 }), fc.nat(), (msgs, size, cutSeed) => {
        const w = new ChunkWriter();
        const bytes = Buffer.concat([w.setChunkSize(size), ...msgs.map((m) => w.write(m))]);
        const got = readSplit(bytes, cutSeed % (bytes.length + 1));
        expect(got.slice(1)).toEqual(msgs);
      }),
      { numRuns: 200 },
    );
  });

  it('keeps unparsed bytes in rest() and stops at a message boundary', () => {
    const w = new ChunkWriter();
    const one = w.write(msg(3, 0, 20, 0, Buffer.from('one')));
    const two = w.write(msg(3, 0, 20, 0, Buffer.from('two')));
    const r = new ChunkReader();
    r.push(Buffer.concat([one, two.subarray(0, 5)]));
    expect(r.next()?.payload.toString()).toBe('one');
    expect(r.next()).toBeUndefined();
    expect(r.rest()).toEqual(two.subarray(0, 5));
    expect(r.midMessage).toBe(false);
  });

  it('drops a partial message on Abort', () => {
    const w = new ChunkWriter();
    const big = w.write(msg(4, 0, 9, 1, Buffer.alloc(200, 7)));
    const abort = Buffer.alloc(4);
    abort.writeUInt32BE(4);
    const r = new ChunkReader();
    r.push(big.subarray(0, 12 + 128)); // first chunk only
    expect(r.next()).toBeUndefined();
    expect(r.midMessage).toBe(true);
    r.push(w.write(msg(2, 0, MSG.ABORT, 0, abort)));
    expect(r.next()?.typeId).toBe(MSG.ABORT);
    expect(r.midMessage).toBe(false);
    r.push(w.write(msg(4, 0, 9, 1, Buffer.from('x'))));
    expect(r.next()?.payload.toString()).toBe('x');
  });

  it('fails with RtmpChunkError on protocol violations and limits', () => {
    const bad = (bytes: Buffer, opts = {}) => {
      const r = new ChunkReader(opts);
      r.push(bytes);
      return () => readAll(r);
    };
    expect(bad(Buffer.from([0x43, 0, 0, 0, 0, 0, 0, 0]))).toThrow(/starts with a fmt 1 header/);
    const w = new ChunkWriter();
    expect(bad(w.write(msg(3, 0, 20, 0, Buffer.alloc(1000))), { maxMessageSize: 999 })).toThrow(/message of 1000 bytes/);
    const zero = Buffer.alloc(4);
    expect(bad(w.write(msg(2, 0, MSG.SET_CHUNK_SIZE, 0, zero)))).toThrow(/invalid chunk size 0/);
    const many = Buffer.concat(Array.from({ length: 5 }, (_, i) => w.write(msg(10 + i, 0, 9, 1, Buffer.alloc(1)))));
    expect(bad(many, { maxChunkStreams: 4 })).toThrow(/more than 4 chunk streams/);
    // Once failed, it keeps failing.
    const r = new ChunkReader();
    r.push(Buffer.from([0x43, 0, 0, 0, 0, 0, 0, 0]));
    expect(() => r.next()).toThrow(RtmpChunkError);
    expect(() => r.next()).toThrow(RtmpChunkError);
  });

  it('never throws anything but RtmpChunkError on random bytes (fast-check)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
        const r = new ChunkReader({ maxMessageSize: 1000 });
        r.push(Buffer.from(bytes));
        try {
          readAll(r);
        } catch (err) {
          expect(err).toBeInstanceOf(RtmpChunkError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
