/**
 * AMF0 (Action Message Format 0) as RTMP commands use it: number, boolean, string (and long
 * string), object, null, undefined, ECMA array, strict array, object end. Pure: no I/O.
 *
 * Decoding is total: any byte sequence either decodes or fails with an `Amf0Error` (never a
 * RangeError, never unbounded allocation or recursion). Objects decode into null-prototype
 * records, so keys such as `__proto__` are plain data.
 */

export const AMF0 = {
  NUMBER: 0x00,
  BOOLEAN: 0x01,
  STRING: 0x02,
  OBJECT: 0x03,
  NULL: 0x05,
  UNDEFINED: 0x06,
  ECMA_ARRAY: 0x08,
  OBJECT_END: 0x09,
  STRICT_ARRAY: 0x0a,
  LONG_STRING: 0x0c,
} as const;

/** An AMF0 anonymous object (marker 0x03). */
export interface Amf0Object {
  [key: string]: Amf0Value;
}

/** An ECMA array (marker 0x08): an associative array; kept apart from objects so it round-trips. */
export class Amf0EcmaArray {
  constructor(readonly props: Amf0Object) {}
}

export type Amf0Value = number | boolean | string | null | undefined | Amf0Object | Amf0EcmaArray | Amf0Value[];

/** Bytes that are not valid AMF0, or a value AMF0 cannot carry. */
export class Amf0Error extends Error {
  constructor(
    message: string,
    readonly offset?: number,
  ) {
    super(offset === undefined ? message : `${message} at byte ${offset}`);
    this.name = 'Amf0Error';
  }
}

/** Deepest nesting of objects/arrays accepted when decoding (and encoding). */
export const MAX_DEPTH = 64;

const OBJECT_END_BYTES = Buffer.from([0x00, 0x00, AMF0.OBJECT_END]);

function newObject(): Amf0Object {
  return Object.create(null) as Amf0Object;
}

/** Decodes one value starting at `offset`; returns it and the offset after it. */
export function decodeAmf0Value(buf: Uint8Array, offset = 0): { value: Amf0Value; offset: number } {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const r = new Reader(b, offset);
  const value = r.value(0);
  return { value, offset: r.pos };
}

/** Decodes every value in `buf` (an RTMP command payload: name, transaction id, args...). */
export function decodeAmf0(buf: Uint8Array): Amf0Value[] {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const r = new Reader(b, 0);
  const out: Amf0Value[] = [];
  while (r.pos < b.length) out.push(r.value(0));
  return out;
}

class Reader {
  constructor(
    private readonly buf: Buffer,
    public pos: number,
  ) {
    if (!Number.isInteger(pos) || pos < 0 || pos > buf.length) throw new Amf0Error('offset out of range');
  }

  private need(n: number): void {
    if (this.buf.length - this.pos < n) throw new Amf0Error(`truncated: need ${n} more byte(s)`, this.pos);
  }

  private u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }

  private u16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  private u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  private utf8(len: number): string {
    this.need(len);
    const s = this.buf.toString('utf8', this.pos, this.pos + len);
    this.pos += len;
    return s;
  }

  /** Key/value pairs up to the empty key + object end marker. */
  private props(depth: number): Amf0Object {
    const obj = newObject();
    for (;;) {
      const key = this.utf8(this.u16());
      if (key === '' && this.buf[this.pos] === AMF0.OBJECT_END) {
        this.pos++;
        return obj;
      }
      if (key === '') this.need(1); // a truncated end marker reports as truncated
      obj[key] = this.value(depth + 1);
    }
  }

  value(depth: number): Amf0Value {
    if (depth > MAX_DEPTH) throw new Amf0Error(`nesting deeper than ${MAX_DEPTH}`, this.pos);
    const at = this.pos;
    const marker = this.u8();
    switch (marker) {
      case AMF0.NUMBER: {
        this.need(8);
        const v = this.buf.readDoubleBE(this.pos);
        this.pos += 8;
        return v;
      }
      case AMF0.BOOLEAN:
        return this.u8() !== 0;
      case AMF0.STRING:
        return this.utf8(this.u16());
      case AMF0.LONG_STRING:
        return this.utf8(this.u32());
      case AMF0.OBJECT:
        return this.props(depth);
      case AMF0.NULL:
        return null;
      case AMF0.UNDEFINED:
        return undefined;
      case AMF0.ECMA_ARRAY:
        this.u32(); // count: a hint only, the end marker terminates
        return new Amf0EcmaArray(this.props(depth));
      case AMF0.STRICT_ARRAY: {
        const count = this.u32();
        // Every value takes at least one byte: refuse counts the bytes cannot hold before allocating.
        if (count > this.buf.length - this.pos) throw new Amf0Error(`strict array of ${count} values in ${this.buf.length - this.pos} bytes`, at);
        const arr: Amf0Value[] = [];
        for (let i = 0; i < count; i++) arr.push(this.value(depth + 1));
        return arr;
      }
      case AMF0.OBJECT_END:
        throw new Amf0Error('object end marker outside an object', at);
      default:
        throw new Amf0Error(`unsupported marker 0x${marker.toString(16).padStart(2, '0')}`, at);
    }
  }
}

/** Encodes values one after another (an RTMP command payload). */
export function encodeAmf0(...values: Amf0Value[]): Buffer {
  const parts: Buffer[] = [];
  for (const v of values) encodeValue(v, parts, 0);
  return Buffer.concat(parts);
}

function encodeKey(key: string, parts: Buffer[]): void {
  const bytes = Buffer.from(key, 'utf8');
  if (bytes.length > 0xffff) throw new Amf0Error(`object key of ${bytes.length} bytes (max 65535)`);
  if (bytes.length === 0) throw new Amf0Error('empty object key (reserved for the end marker)');
  const len = Buffer.allocUnsafe(2);
  len.writeUInt16BE(bytes.length);
  parts.push(len, bytes);
}

function encodeProps(obj: Amf0Object, parts: Buffer[], depth: number): void {
  for (const key of Object.keys(obj)) {
    encodeKey(key, parts);
    encodeValue(obj[key], parts, depth + 1);
  }
  parts.push(OBJECT_END_BYTES);
}

function encodeValue(v: Amf0Value, parts: Buffer[], depth: number): void {
  if (depth > MAX_DEPTH) throw new Amf0Error(`nesting deeper than ${MAX_DEPTH}`);
  if (v === null) return void parts.push(Buffer.from([AMF0.NULL]));
  if (v === undefined) return void parts.push(Buffer.from([AMF0.UNDEFINED]));
  switch (typeof v) {
    case 'number': {
      const b = Buffer.allocUnsafe(9);
      b[0] = AMF0.NUMBER;
      b.writeDoubleBE(v, 1);
      return void parts.push(b);
    }
    case 'boolean':
      return void parts.push(Buffer.from([AMF0.BOOLEAN, v ? 1 : 0]));
    case 'string': {
      const bytes = Buffer.from(v, 'utf8');
      if (bytes.length <= 0xffff) {
        const h = Buffer.allocUnsafe(3);
        h[0] = AMF0.STRING;
        h.writeUInt16BE(bytes.length, 1);
        return void parts.push(h, bytes);
      }
      const h = Buffer.allocUnsafe(5);
      h[0] = AMF0.LONG_STRING;
      h.writeUInt32BE(bytes.length, 1);
      return void parts.push(h, bytes);
    }
    case 'object': {
      if (Array.isArray(v)) {
        const h = Buffer.allocUnsafe(5);
        h[0] = AMF0.STRICT_ARRAY;
        h.writeUInt32BE(v.length, 1);
        parts.push(h);
        for (const item of v) encodeValue(item, parts, depth + 1);
        return;
      }
      if (v instanceof Amf0EcmaArray) {
        const h = Buffer.allocUnsafe(5);
        h[0] = AMF0.ECMA_ARRAY;
        h.writeUInt32BE(Object.keys(v.props).length, 1);
        parts.push(h);
        return encodeProps(v.props, parts, depth);
      }
      parts.push(Buffer.from([AMF0.OBJECT]));
      return encodeProps(v, parts, depth);
    }
    default:
      throw new Amf0Error(`cannot encode a ${typeof v}`);
  }
}

/** `v` as an object (plain or ECMA array props), else undefined. */
export function asObject(v: Amf0Value): Amf0Object | undefined {
  if (v instanceof Amf0EcmaArray) return v.props;
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) return v;
  return undefined;
}
