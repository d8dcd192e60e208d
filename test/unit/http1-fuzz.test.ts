import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { findHeadEnd, HeadError, headerValue, parseRequestHead, parseResponseHead, rewriteHead, type Head } from '../../src/proxy/http1/head.js';

/**
 * The head parser under arbitrary bytes (the proxy's first contact with the network): it accepts
 * or refuses with the documented statuses, never throws anything else, and what it accepts is
 * internally consistent; valid heads round-trip exactly; smuggling shapes are refused wherever they
 * appear.
 */

const TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const token = fc.string({ unit: fc.constantFrom(...TCHARS), minLength: 1, maxLength: 12 });
const valueChar = fc.constantFrom(...'abcXYZ019 \t;,=/:"()-_.~!'.split(''));
const fieldValueArb = fc.string({ unit: valueChar, maxLength: 20 }).map((v) => v.trim());
const targetArb = fc.string({ unit: fc.constantFrom(...'abc019/?&=%-._~:@!$'.split('')), minLength: 0, maxLength: 30 }).map((t) => `/${t}`);
/** Names the parser gives meaning to, kept out of the random ones (their values are checked apart). */
const SPECIAL = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'upgrade', 'keep-alive', 'te', 'trailer', 'proxy-connection', 'sec-websocket-key']);
const plainName = token.filter((n) => !SPECIAL.has(n.toLowerCase()));

const requestArb = fc.record({
  method: token,
  target: targetArb,
  host: fc.string({ unit: fc.constantFrom(...'abc019.-:'.split('')), minLength: 1, maxLength: 20 }),
  headers: fc.array(fc.tuple(plainName, fieldValueArb), { maxLength: 8 }),
  length: fc.option(fc.integer({ min: 0, max: 1e9 }), { nil: undefined }),
});

const text = (r: { method: string; target: string; host: string; headers: [string, string][]; length: number | undefined }) =>
  `${r.method} ${r.target} HTTP/1.1\r\nHost: ${r.host}\r\n${r.headers.map(([k, v]) => `${k}: ${v}\r\n`).join('')}${r.length !== undefined ? `Content-Length: ${r.length}\r\n` : ''}\r\n`;

/** Parse as the proxy does: find the end, then parse; HeadError or a head, nothing else. */
function attempt(bytes: Uint8Array, response = false): { head?: Head; error?: HeadError } {
  const buf = Buffer.from(bytes);
  try {
    const end = findHeadEnd(buf, 0, buf.length, 16_384, response ? 502 : 431);
    if (end === -1) return {};
    return { head: response ? parseResponseHead(buf, 0, end) : parseRequestHead(buf, 0, end) };
  } catch (err) {
    if (!(err instanceof HeadError)) throw err;
    return { error: err };
  }
}

function consistent(head: Head): void {
  const f = head.fields;
  expect(f.length).toBe(head.kinds.length * 5);
  let prev = head.fieldsStart;
  for (let i = 0; i < f.length; i += 5) {
    const [nameStart, nameEnd, valueStart, valueEnd, lineEnd] = [f[i]!, f[i + 1]!, f[i + 2]!, f[i + 3]!, f[i + 4]!];
    expect(nameStart).toBe(prev);
    expect(nameStart < nameEnd && nameEnd < valueStart + 1 && valueStart <= valueEnd && valueEnd < lineEnd).toBe(true);
    for (let j = nameStart; j < nameEnd; j++) expect(TCHARS.includes(String.fromCharCode(head.buf[j]!))).toBe(true);
    for (let j = valueStart; j < valueEnd; j++) {
      const c = head.buf[j]!;
      expect(c === 0x09 || (c >= 0x20 && c !== 0x7f)).toBe(true);
    }
    prev = lineEnd;
  }
  expect(prev + 2).toBe(head.headEnd);
  expect(head.contentLength).toBeGreaterThanOrEqual(-1);
  expect(head.chunked && head.contentLength !== -1).toBe(false);
}

/** A valid head with bytes changed, inserted or removed here and there. */
const mutatedArb = fc
  .tuple(
    requestArb,
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('set', 'insert', 'delete')), { minLength: 1, maxLength: 4 }),
  )
  .map(([r, edits]) => {
    const bytes = [...Buffer.from(text(r), 'latin1')];
    for (const [at, byte, op] of edits) {
      const i = at % bytes.length;
      if (op === 'set') bytes[i] = byte;
      else if (op === 'insert') bytes.splice(i, 0, byte);
      else if (bytes.length > 1) bytes.splice(i, 1);
    }
    return Uint8Array.from(bytes);
  });


describe('findHeadEnd (a strided JS scan)', () => {
  // What it must equal: the first CRLFCRLF wholly inside [from, to), by the obvious search.
  const reference = (buf: Buffer, from: number, to: number) => {
    const i = buf.subarray(0, to).indexOf('\r\n\r\n', from);
    return i === -1 ? -1 : i + 4;
  };
  // Pieces that make CRLFCRLF likely at any offset, and near-misses (CRLF CR, LF CRLF).
  const piece = fc.constantFrom([0x0d], [0x0a], [0x41], [0x20], [0x0d, 0x0a], [0x0d, 0x0a, 0x0d, 0x0a], [0x0d, 0x0a, 0x0d]);
  const bytes = fc.array(piece, { maxLength: 30 }).map((ps) => ps.flat());

  it('finds the first CRLFCRLF in [from, to) at every alignment, and never one past `to` (stale bytes of a shared read buffer)', () => {
    fc.assert(
      fc.property(bytes, fc.nat(70), fc.nat(70), bytes, (inside, a, b, stale) => {
        const buf = Buffer.from([...inside, ...stale, 0x0d, 0x0a, 0x0d, 0x0a]);
        const from = a % (inside.length + 1);
        const to = from + (b % (inside.length - from + 1));
        expect(findHeadEnd(buf, from, to, 1 << 20, 431)).toBe(reference(buf, from, to));
      }),
      { numRuns: 5000 },
    );
  });
});

describe('HTTP/1.1 head parser under fuzzing', () => {
  it('arbitrary bytes: a consistent head or a HeadError with a documented status, nothing else', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), mutatedArb), (bytes) => {
        const { head, error } = attempt(bytes);
        if (error) expect([400, 431, 501, 505]).toContain(error.status);
        if (head) consistent(head);
      }),
      { numRuns: 3000 },
    );
  });

  it('response heads: arbitrary bytes give a consistent head or a 502', () => {
    const statusLines = fc.constantFrom('HTTP/1.1 200 OK\r\n', 'HTTP/1.0 204\r\n', 'HTTP/1.1 101 Switching\r\n');
    const arb = fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      fc.tuple(statusLines, fc.uint8Array({ maxLength: 120 })).map(([line, rest]) => Uint8Array.from([...Buffer.from(line, 'latin1'), ...rest, 13, 10, 13, 10])),
    );
    fc.assert(
      fc.property(arb, (bytes) => {
        const { head, error } = attempt(bytes, true);
        if (error) expect(error.status).toBe(502);
        if (head) consistent(head);
      }),
      { numRuns: 2000 },
    );
  });

  it('valid requests parse to what was sent and are forwarded byte for byte', () => {
    fc.assert(
      fc.property(requestArb, (r) => {
        const sent = Buffer.from(text(r), 'latin1');
        const { head, error } = attempt(sent);
        expect(error).toBeUndefined();
        const h = head as ReturnType<typeof parseRequestHead>;
        expect(h.method).toBe(r.method);
        expect(h.target).toBe(r.target);
        expect(h.host).toBe(r.host);
        expect(h.contentLength).toBe(r.length ?? -1);
        r.headers.forEach(([name, value], i) => {
          // headerValue answers the first header of a name (any case).
          const first = r.headers.findIndex(([n]) => n.toLowerCase() === name.toLowerCase());
          if (first === i) expect(headerValue(h, name.toLowerCase())).toBe(value);
        });
        expect(rewriteHead(h, () => false, () => '').equals(sent)).toBe(true);
      }),
      { numRuns: 1000 },
    );
  });

  it('Content-Length with Transfer-Encoding, at any place and in any case, is refused', () => {
    const te = fc.constantFrom('Transfer-Encoding: chunked', 'transfer-encoding: chunked', 'TRANSFER-ENCODING:chunked', 'Transfer-Encoding: gzip, chunked');
    fc.assert(
      fc.property(requestArb, te, fc.nat(), fc.nat(), (r, teLine, a, b) => {
        const lines = [`Host: ${r.host}`, ...r.headers.map(([k, v]) => `${k}: ${v}`)];
        lines.splice(a % (lines.length + 1), 0, teLine);
        lines.splice(b % (lines.length + 1), 0, `Content-Length: ${r.length ?? 5}`);
        const { head, error } = attempt(Buffer.from(`POST ${r.target} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`, 'latin1'));
        expect(head).toBeUndefined();
        expect([400, 501]).toContain(error?.status);
      }),
      { numRuns: 1000 },
    );
  });
});
