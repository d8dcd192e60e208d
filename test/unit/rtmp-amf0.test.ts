import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Amf0EcmaArray, Amf0Error, decodeAmf0, decodeAmf0Value, encodeAmf0, MAX_DEPTH, type Amf0Object, type Amf0Value } from '../../src/proxy/rtmp/amf0.js';

/** Compares decoded values structurally (decoded objects have a null prototype). */
function plain(v: Amf0Value): unknown {
  if (v instanceof Amf0EcmaArray) return { ecma: plain(v.props) };
  if (Array.isArray(v)) return v.map(plain);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

const key = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 12 });
const value: fc.Arbitrary<Amf0Value> = fc.letrec<{ v: Amf0Value }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.double(),
    fc.boolean(),
    fc.string({ unit: 'grapheme', maxLength: 40 }),
    fc.constant(null),
    fc.constant(undefined),
    fc.dictionary(key, tie('v'), { maxKeys: 5 }).map((o) => o as Amf0Object),
    fc.dictionary(key, tie('v'), { maxKeys: 5 }).map((o) => new Amf0EcmaArray(o as Amf0Object)),
    fc.array(tie('v'), { maxLength: 5 }),
  ),
})).v;

describe('AMF0', () => {
  it('encodes an RTMP connect command byte for byte', () => {
    const bytes = encodeAmf0('connect', 1, { app: 'live' });
    expect(bytes.toString('hex')).toBe(
      '0200' + '07' + Buffer.from('connect').toString('hex') + '00' + '3ff0000000000000' + '03' + '0003' + Buffer.from('app').toString('hex') + '02' + '0004' + Buffer.from('live').toString('hex') + '000009',
    );
    expect(plain(decodeAmf0(bytes) as Amf0Value)).toEqual(['connect', 1, { app: 'live' }]);
  });

  it('round-trips every value (fast-check)', () => {
    fc.assert(
      fc.property(fc.array(value, { maxLength: 4 }), (values) => {
        const decoded = decodeAmf0(encodeAmf0(...values));
        expect(plain(decoded as Amf0Value)).toEqual(plain(values as Amf0Value));
      }),
      { numRuns: 300 },
    );
  });

  it('decodes NaN, -0 and long strings', () => {
    const [nan, negZero] = decodeAmf0(encodeAmf0(NaN, -0));
    expect(nan).toBeNaN();
    expect(Object.is(negZero, -0)).toBe(true);
    const long = 'x'.repeat(70_000);
    const bytes = encodeAmf0(long);
    expect(bytes[0]).toBe(0x0c);
    expect(decodeAmf0(bytes)).toEqual([long]);
  });

  it('decodes one value at an offset', () => {
    const bytes = encodeAmf0('a', 2, null);
    const first = decodeAmf0Value(bytes, 0);
    expect(first.value).toBe('a');
    const second = decodeAmf0Value(bytes, first.offset);
    expect(second).toEqual({ value: 2, offset: bytes.length - 1 });
  });

  it('keeps __proto__ keys as data', () => {
    const bytes = Buffer.concat([Buffer.from([0x03, 0x00, 0x09]), Buffer.from('__proto__'), encodeAmf0({ polluted: true }), Buffer.from([0, 0, 9])]);
    const [obj] = decodeAmf0(bytes) as [Amf0Object];
    expect(Object.keys(obj)).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('fails with Amf0Error only, on any bytes (fast-check)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        try {
          decodeAmf0(bytes);
        } catch (err) {
          expect(err).toBeInstanceOf(Amf0Error);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('fails with Amf0Error on truncations of valid encodings (fast-check)', () => {
    fc.assert(
      fc.property(value, fc.nat(), (v, cut) => {
        const bytes = encodeAmf0(v);
        const n = cut % bytes.length;
        expect(() => decodeAmf0(bytes.subarray(0, n === 0 ? 0 : n))).not.toThrow(RangeError);
        if (n > 0) expect(() => decodeAmf0(bytes.subarray(0, n))).toThrow(Amf0Error);
      }),
      { numRuns: 300 },
    );
  });

  it('refuses bad markers, huge strict array counts and deep nesting', () => {
    expect(() => decodeAmf0(Buffer.from([0x0d]))).toThrow(/unsupported marker 0x0d/);
    expect(() => decodeAmf0(Buffer.from([0x09]))).toThrow(/object end marker/);
    expect(() => decodeAmf0(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x05]))).toThrow(/strict array of 4294967295/);
    const nested = (depth: number) => Buffer.concat([...Array.from({ length: depth }, () => Buffer.from([0x0a, 0, 0, 0, 1])), Buffer.from([0x05])]);
    expect(() => decodeAmf0(nested(MAX_DEPTH))).not.toThrow();
    expect(() => decodeAmf0(nested(100_000))).toThrow(/nesting deeper/);
    expect(() => encodeAmf0({ '': 1 })).toThrow(Amf0Error);
  });

  it('ignores the ECMA array count hint', () => {
    const bytes = Buffer.concat([Buffer.from([0x08, 0, 0, 0, 9, 0, 1]), Buffer.from('a'), encodeAmf0(true), Buffer.from([0, 0, 9])]);
    expect(plain(decodeAmf0(bytes)[0])).toEqual({ ecma: { a: true } });
  });
});
