import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ChunkedBody, LengthBody, UntilCloseBody } from '../../src/proxy/http1/body.js';
import {
  fieldName,
  fieldValue,
  findHeadEnd,
  H,
  HeadError,
  headerValue,
  isHopByHop,
  isIdempotent,
  parseRequestHead,
  parseResponseHead,
  responseHasBody,
  rewriteHead,
  valueOf,
  type RequestHead,
  type ResponseHead,
} from '../../src/proxy/http1/head.js';
import { errorResponse } from '../../src/proxy/respond.js';

/** Parses a whole request head given as a string (must end in CRLFCRLF). */
function req(s: string, max = 16_384): RequestHead {
  const buf = Buffer.from(s, 'latin1');
  const end = findHeadEnd(buf, 0, buf.length, max, 431);
  if (end === -1) throw new Error('incomplete head');
  return parseRequestHead(buf, 0, end);
}

function res(s: string): ResponseHead {
  const buf = Buffer.from(s, 'latin1');
  const end = findHeadEnd(buf, 0, buf.length, 65_536, 502);
  if (end === -1) throw new Error('incomplete head');
  return parseResponseHead(buf, 0, end);
}

/** The HeadError `fn` throws (fails the test when it throws nothing or something else). */
function headError(fn: () => unknown): HeadError {
  try {
    fn();
  } catch (err) {
    if (err instanceof HeadError) return err;
    throw err;
  }
  throw new Error('expected a HeadError');
}

describe('request heads', () => {
  it('parses a GET', () => {
    const h = req('GET /a/b?c=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n');
    expect(h.method).toBe('GET');
    expect(h.target).toBe('/a/b?c=1');
    expect(h.minor).toBe(1);
    expect(h.host).toBe('example.com');
    expect(h.close).toBe(false);
    expect(h.contentLength).toBe(-1);
    expect(h.chunked).toBe(false);
    expect(h.upgrade).toBeUndefined();
    expect(h.wsKey).toBe(false);
    expect(h.kinds).toEqual([H.Host, H.Other]);
    expect(fieldName(h, 1)).toBe('accept');
    expect(fieldValue(h, 1)).toBe('*/*');
    expect(h.headEnd).toBe(h.buf.length);
  });

  it('parses a POST with a Content-Length and a chunked one', () => {
    const a = req('POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\n\r\n');
    expect(a.method).toBe('POST');
    expect(a.contentLength).toBe(12);
    expect(a.chunked).toBe(false);
    const b = req('POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n');
    expect(b.chunked).toBe(true);
    expect(b.contentLength).toBe(-1);
  });

  it('HTTP/1.0: close by default, kept alive with Connection: keep-alive, Host optional', () => {
    const a = req('GET / HTTP/1.0\r\n\r\n');
    expect(a.minor).toBe(0);
    expect(a.close).toBe(true);
    expect(a.host).toBeUndefined();
    const b = req('GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n');
    expect(b.close).toBe(false);
    const c = req('GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n');
    expect(c.close).toBe(true);
    const d = req('GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Close\r\n\r\n');
    expect(d.close).toBe(true);
  });

  it('takes an absolute-form target as it is', () => {
    const h = req('GET http://example.com:8080/p?q=1 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n');
    expect(h.target).toBe('http://example.com:8080/p?q=1');
    expect(h.host).toBe('example.com:8080');
  });

  it('trims OWS around header values (spaces and tabs), keeps inner whitespace', () => {
    const h = req('GET / HTTP/1.1\r\nHost:\t  h  \t\r\nX-A:   a b\t \r\nX-Empty:\r\nX-Blank:   \r\n\r\n');
    expect(h.host).toBe('h');
    expect(headerValue(h, 'x-a')).toBe('a b');
    expect(headerValue(h, 'x-empty')).toBe('');
    expect(headerValue(h, 'x-blank')).toBe('');
  });

  it('headerValue is case-insensitive on both sides and returns the first', () => {
    const h = req('GET / HTTP/1.1\r\nHost: h\r\nX-Thing: one\r\nx-thing: two\r\n\r\n');
    expect(headerValue(h, 'x-thing')).toBe('one');
    expect(headerValue(h, 'X-THING')).toBe('one');
    expect(headerValue(h, 'X-Thing')).toBe('one');
    expect(headerValue(h, 'x-thin')).toBeUndefined();
    expect(headerValue(h, 'x-things')).toBeUndefined();
    expect(valueOf(h, H.Host)).toBe('h');
    expect(valueOf(h, H.Cookie)).toBeUndefined();
  });

  it.each([
    ['missing Host on HTTP/1.1', 'GET / HTTP/1.1\r\nAccept: x\r\n\r\n', 400, 'missing host'],
    ['two Host headers', 'GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n', 400, 'more than one host'],
    ['obs-fold', 'GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n', 400, 'folding'],
    ['obs-fold with a tab', 'GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n', 400, 'folding'],
    ['space before the colon', 'GET / HTTP/1.1\r\nHost : a\r\n\r\n', 400, 'invalid header name'],
    ['a header without a colon', 'GET / HTTP/1.1\r\nHost: a\r\nX-A\r\n\r\n', 400, 'invalid header name'],
    ['an empty header name', 'GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n', 400, 'without a name'],
    ['bare LF inside a header line', 'GET / HTTP/1.1\r\nHost: a\r\nX-A: b\nX-B: c\r\n\r\n', 400, 'invalid characters'],
    ['bare CR inside a header line', 'GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rX-B: c\r\n\r\n', 400, 'bare CR'],
    ['bare LF ending the request line', 'GET / HTTP/1.1\nHost: a\r\n\r\n', 400, 'malformed request line'],
    ['bare CR in the request line', 'GET /\r HTTP/1.1\r\nHost: a\r\n\r\n', 400, 'request line'],
    ['NUL in a value', 'GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n', 400, 'invalid characters'],
    ['ESC in a value', 'GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x1bc\r\n\r\n', 400, 'invalid characters'],
    ['DEL in a value', 'GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x7fc\r\n\r\n', 400, 'invalid characters'],
    ['a bad method token', 'G(T / HTTP/1.1\r\nHost: a\r\n\r\n', 400, 'malformed request line'],
    ['an empty method', ' / HTTP/1.1\r\nHost: a\r\n\r\n', 400, 'malformed request line'],
    ['two spaces after the method', 'GET  / HTTP/1.1\r\nHost: a\r\n\r\n', 400, 'empty request target'],
    ['a control character in the target', 'GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n', 400, 'invalid request target'],
    ['a lower-case version', 'GET / http/1.1\r\nHost: a\r\n\r\n', 400, 'malformed request line'],
    ['HTTP/2.0', 'GET / HTTP/2.0\r\nHost: a\r\n\r\n', 505, 'not supported'],
    ['HTTP/1.2', 'GET / HTTP/1.2\r\nHost: a\r\n\r\n', 505, 'not supported'],
    ['HTTP/0.9 style', 'GET / HTTP/0.9\r\nHost: a\r\n\r\n', 505, 'not supported'],
    ['Content-Length with Transfer-Encoding', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n', 400, 'content-length with transfer-encoding'],
    ['Transfer-Encoding before Content-Length', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n', 400, 'content-length with transfer-encoding'],
    ['two different Content-Lengths', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n', 400, 'conflicting'],
    ['a list of different Content-Lengths', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n', 400, 'conflicting'],
    ['a non-digit Content-Length', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5a\r\n\r\n', 400, 'invalid content-length'],
    ['a signed Content-Length', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n', 400, 'invalid content-length'],
    ['a negative Content-Length', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n', 400, 'invalid content-length'],
    ['an empty Content-Length', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n', 400, 'invalid content-length'],
    ['a hex Content-Length', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n', 400, 'invalid content-length'],
    ['a huge Content-Length', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1234567890123456\r\n\r\n', 400, 'invalid content-length'],
    ['TE gzip, chunked', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n', 501, 'unsupported transfer-encoding'],
    ['TE chunked twice (two lines)', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n', 501, 'unsupported transfer-encoding'],
    ['TE identity', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n', 501, 'unsupported transfer-encoding'],
    ['TE chunked in an HTTP/1.0 request', 'POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n', 400, 'HTTP/1.0'],
  ])('refuses %s', (_name, text, status, message) => {
    const e = headError(() => req(text));
    expect(e.status).toBe(status);
    expect(e.message).toContain(message);
  });

  it('accepts `Content-Length: 5, 5` and repeated equal Content-Lengths', () => {
    expect(req('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n').contentLength).toBe(5);
    expect(req('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\ncontent-length: 7\r\n\r\n').contentLength).toBe(7);
    expect(req('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n').contentLength).toBe(0);
  });

  it('findHeadEnd: -1 while incomplete, the end when complete, 431 past the limit', () => {
    const text = Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\nNEXT');
    expect(findHeadEnd(text, 0, 10, 1024, 431)).toBe(-1);
    // The end lies past `to`: not complete yet.
    expect(findHeadEnd(text, 0, text.length - 6, 1024, 431)).toBe(-1);
    expect(findHeadEnd(text, 0, text.length, 1024, 431)).toBe(text.length - 4);
    const big = Buffer.from(`GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${'x'.repeat(2000)}`);
    expect(findHeadEnd(big, 0, big.length, 4096, 431)).toBe(-1);
    const e = headError(() => findHeadEnd(big, 0, big.length, 1024, 431));
    expect(e.status).toBe(431);
    expect(e.message).toContain('too large');
    // A complete head longer than the limit is refused too.
    const whole = Buffer.concat([big, Buffer.from('\r\n\r\n')]);
    expect(headError(() => findHeadEnd(whole, 0, whole.length, 1024, 431)).status).toBe(431);
    // Exactly at the limit is fine.
    expect(findHeadEnd(whole, 0, whole.length, whole.length, 431)).toBe(whole.length);
  });

  it('counts Upgrade only with Connection: upgrade', () => {
    expect(req('GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n').upgrade).toBeUndefined();
    expect(req('GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nUpgrade: websocket\r\n\r\n').upgrade).toBeUndefined();
    expect(req('GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n').upgrade).toBe('websocket');
    expect(req('GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n').upgrade).toBe('websocket');
  });

  it('detects Sec-WebSocket-Key in any case', () => {
    expect(req('GET / HTTP/1.1\r\nHost: a\r\nsec-websocket-KEY: abc\r\n\r\n').wsKey).toBe(true);
    expect(req('GET / HTTP/1.1\r\nHost: a\r\nSec-WebSocket-Version: 13\r\n\r\n').wsKey).toBe(false);
  });

  it('isHopByHop: the fixed set and the names Connection lists', () => {
    const h = req(
      'GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret , x-other\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Connection: keep-alive\r\nUpgrade: h2c\r\nX-Secret: s\r\nX-OTHER: o\r\nX-Kept: k\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n',
    );
    const hop = h.kinds.map((_, i) => [fieldName(h, i), isHopByHop(h, i)]);
    expect(hop).toEqual([
      ['host', false],
      ['connection', true],
      ['keep-alive', true],
      ['te', true],
      ['proxy-connection', true],
      ['upgrade', true],
      ['x-secret', true],
      ['x-other', true],
      ['x-kept', false],
      ['transfer-encoding', false],
      ['trailer', false],
    ]);
    expect(h.connectionTokens).toEqual(['x-secret', 'x-other']);
    const plain = req('GET / HTTP/1.1\r\nHost: a\r\nX-Secret: s\r\n\r\n');
    expect(isHopByHop(plain, 1)).toBe(false);
  });

  it('rewriteHead keeps the kept lines byte for byte, drops the others, appends extras and a tail', () => {
    const text = 'GET /x HTTP/1.1\r\nHost:  a \r\nConnection: X-Drop\r\nx-weird-CASE:\tv\t\r\nX-Drop: 1\r\nAccept: */*\r\n\r\n';
    const h = req(text);
    const out = rewriteHead(h, (i) => isHopByHop(h, i), () => 'x-extra: 1\r\n', Buffer.from('BODY'));
    expect(out.toString('latin1')).toBe('GET /x HTTP/1.1\r\nHost:  a \r\nx-weird-CASE:\tv\t\r\nAccept: */*\r\nx-extra: 1\r\n\r\nBODY');
    // Nothing dropped, nothing added: the head exactly as it came.
    expect(rewriteHead(h, () => false, () => '').toString('latin1')).toBe(text);
    // Everything dropped: the start line alone.
    expect(rewriteHead(h, () => true, () => '').toString('latin1')).toBe('GET /x HTTP/1.1\r\n\r\n');
    // extra() sees every drop first.
    const dropped: number[] = [];
    const seen: number[][] = [];
    rewriteHead(
      h,
      (i) => {
        dropped.push(i);
        return false;
      },
      () => {
        seen.push([...dropped]);
        return '';
      },
    );
    expect(seen).toEqual([[0, 1, 2, 3, 4]]);
  });

  it('rewriteHead works on a head that does not start at offset 0', () => {
    const buf = Buffer.from('JUNKHTTP/1.1 200 OK\r\nConnection: keep-alive\r\nX-A: 1\r\n\r\nrest', 'latin1');
    const end = findHeadEnd(buf, 4, buf.length, 1024, 502);
    const h = parseResponseHead(buf, 4, end);
    expect(h.status).toBe(200);
    expect(rewriteHead(h, (i) => isHopByHop(h, i), () => '').toString('latin1')).toBe('HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\n');
  });
});

describe('response heads', () => {
  it('parses a status line with a reason', () => {
    const h = res('HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\n');
    expect(h.status).toBe(404);
    expect(h.minor).toBe(1);
    expect(h.contentLength).toBe(3);
    expect(h.close).toBe(false);
    expect(h.buf.latin1Slice(0, h.statusLineEnd)).toBe('HTTP/1.1 404 Not Found');
  });

  it('parses a status line without a reason (and with an empty one)', () => {
    const a = res('HTTP/1.1 204\r\n\r\n');
    expect(a.status).toBe(204);
    expect(a.fields).toEqual([]);
    expect(res('HTTP/1.1 200 \r\nX: y\r\n\r\n').status).toBe(200);
  });

  it('HTTP/1.0 answers close unless kept alive; Connection: close on 1.1', () => {
    expect(res('HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n').close).toBe(true);
    expect(res('HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n').close).toBe(false);
    expect(res('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n').close).toBe(true);
  });

  it.each([
    ['garbage', 'hello world\r\n\r\n'],
    ['HTTP/2', 'HTTP/2.0 200 OK\r\n\r\n'],
    ['a short status', 'HTTP/1.1 20 OK\r\n\r\n'],
    ['a status below 100', 'HTTP/1.1 099 X\r\n\r\n'],
    ['no space after the status', 'HTTP/1.1 200OK\r\n\r\n'],
    ['a control character in the reason', 'HTTP/1.1 200 O\x01K\r\n\r\n'],
    ['a bad header line', 'HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n'],
    ['obs-fold', 'HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n'],
    ['different Content-Lengths', 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n'],
    ['an unknown transfer coding', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n'],
  ])('refuses %s with 502', (_name, text) => {
    expect(headError(() => res(text)).status).toBe(502);
  });

  it('chunked wins over Content-Length in a response', () => {
    const h = res('HTTP/1.1 200 OK\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n');
    expect(h.chunked).toBe(true);
    expect(h.contentLength).toBe(-1);
  });

  it('responseHasBody and isIdempotent', () => {
    expect(responseHasBody('GET', 200)).toBe(true);
    expect(responseHasBody('HEAD', 200)).toBe(false);
    expect(responseHasBody('GET', 204)).toBe(false);
    expect(responseHasBody('GET', 304)).toBe(false);
    expect(responseHasBody('GET', 103)).toBe(false);
    expect(responseHasBody('POST', 404)).toBe(true);
    expect(['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'TRACE'].every(isIdempotent)).toBe(true);
    expect(['POST', 'PATCH', 'CONNECT'].some(isIdempotent)).toBe(false);
  });
});

describe('errorResponse', () => {
  it('JSON body with an exact UTF-8 content-length; no body for HEAD', () => {
    const r = errorResponse(503, 'no_backend_available', 'route «é» has no pool', { close: false });
    const [head, body] = r.split('\r\n\r\n') as [string, string];
    expect(head).toMatch(/^HTTP\/1\.1 503 Service Unavailable\r\n/);
    expect(head).toContain(`content-length: ${Buffer.byteLength(body)}`);
    expect(JSON.parse(body)).toEqual({ error: 'no_backend_available', message: 'route «é» has no pool' });
    expect(head).not.toContain('connection:');
    const h = errorResponse(503, 'x', 'y', { close: true, head: true, retryAfterSeconds: 2 });
    expect(h.endsWith('\r\n\r\n')).toBe(true);
    expect(h).toContain('connection: close\r\n');
    expect(h).toContain('retry-after: 2\r\n');
    expect(errorResponse(400, 'x', 'y', { close: false, minor: 0 })).toMatch(/^HTTP\/1\.0 400 Bad Request\r\n[^]*connection: keep-alive\r\n/);
  });
});

/** Feeds `data` to a ChunkedBody in pieces cut at `cuts`; returns how many bytes it took in total. */
function feed(body: ChunkedBody, data: Buffer, cuts: number[]): number {
  const points = [...new Set(cuts.filter((c) => c > 0 && c < data.length))].sort((a, b) => a - b);
  let taken = 0;
  let prev = 0;
  for (const p of [...points, data.length]) {
    // Each piece in its own buffer with junk around it: offsets must be honoured.
    const piece = Buffer.concat([Buffer.from('JJ'), data.subarray(prev, p), Buffer.from('ZZ')]);
    const n = body.advance(piece, 2, piece.length - 2);
    expect(n).toBeLessThanOrEqual(p - prev);
    taken += n;
    if (body.done) return taken;
    expect(n).toBe(p - prev);
    prev = p;
  }
  return taken;
}

const chunkArb = fc.record({
  data: fc.uint8Array({ minLength: 1, maxLength: 40 }),
  upper: fc.boolean(),
  zeros: fc.integer({ min: 0, max: 2 }),
  ext: fc.constantFrom('', ';a=b', ';x', ' ;q="1"', '\t; a = b'),
});

const chunkedArb = fc.record({
  chunks: fc.array(chunkArb, { maxLength: 6 }),
  lastExt: fc.constantFrom('', ';end'),
  trailers: fc.array(fc.constantFrom('X-Sum: 1', 'Expires: never', 'X-Empty:'), { maxLength: 3 }),
});

function encode(m: { chunks: { data: Uint8Array; upper: boolean; zeros: number; ext: string }[]; lastExt: string; trailers: string[] }): Buffer {
  const parts: Buffer[] = [];
  for (const c of m.chunks) {
    let size = c.data.length.toString(16);
    if (c.upper) size = size.toUpperCase();
    parts.push(Buffer.from(`${'0'.repeat(c.zeros)}${size}${c.ext}\r\n`), Buffer.from(c.data), Buffer.from('\r\n'));
  }
  parts.push(Buffer.from(`0${m.lastExt}\r\n${m.trailers.map((t) => `${t}\r\n`).join('')}\r\n`));
  return Buffer.concat(parts);
}

describe('ChunkedBody', () => {
  it('finds the end exactly, however the bytes are split (property)', () => {
    fc.assert(
      fc.property(chunkedArb, fc.array(fc.nat(), { maxLength: 20 }), fc.constantFrom('', 'GET / HTTP/1.1\r\n', 'x'), (m, rawCuts, next) => {
        const body = encode(m);
        const data = Buffer.concat([body, Buffer.from(next)]);
        const cuts = rawCuts.map((c) => c % (data.length + 1));
        const t = new ChunkedBody();
        const taken = feed(t, data, cuts);
        expect(t.done).toBe(true);
        expect(taken).toBe(body.length);
      }),
      { numRuns: 500 },
    );
  });

  it('at every single byte boundary and byte by byte', () => {
    const body = Buffer.from('5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Sum: 2\r\n\r\n');
    const data = Buffer.concat([body, Buffer.from('NEXT')]);
    for (let cut = 0; cut <= data.length; cut++) {
      const t = new ChunkedBody();
      expect(feed(t, data, [cut])).toBe(body.length);
      expect(t.done).toBe(true);
    }
    const t = new ChunkedBody();
    let n = 0;
    for (let i = 0; i < data.length && !t.done; i++) n += t.advance(data, i, i + 1);
    expect(n).toBe(body.length);
    expect(t.done).toBe(true);
  });

  it('is not done before the final CRLF', () => {
    const body = Buffer.from('3\r\nabc\r\n0\r\n\r\n');
    const t = new ChunkedBody();
    expect(t.advance(body, 0, body.length - 1)).toBe(body.length - 1);
    expect(t.done).toBe(false);
    expect(t.advance(body, body.length - 1, body.length)).toBe(1);
    expect(t.done).toBe(true);
    // Done: takes nothing more.
    expect(t.advance(Buffer.from('xyz'), 0, 3)).toBe(0);
  });

  it('takes chunk extensions (with BWS) and trailers', () => {
    const body = Buffer.from('4 ; name="v a l"\r\nabcd\r\n0;last\r\nTrailer-One: 1\r\nTrailer-Two: x\ty\r\n\r\n');
    const t = new ChunkedBody();
    expect(t.advance(body, 0, body.length)).toBe(body.length);
    expect(t.done).toBe(true);
  });

  it('takes 12 hex digits', () => {
    const t = new ChunkedBody();
    const head = Buffer.from('00000000000A\r\n');
    expect(t.advance(head, 0, head.length)).toBe(head.length);
    expect(t.done).toBe(false);
  });

  it.each([
    ['a bad hex digit', '5g\r\nhello\r\n0\r\n\r\n', 'invalid chunk size'],
    ['no size', '\r\nhello\r\n0\r\n\r\n', 'invalid chunk size'],
    ['a sign', '-5\r\nhello\r\n0\r\n\r\n', 'invalid chunk size'],
    ['a 0x prefix', '0x5\r\nhello\r\n0\r\n\r\n', 'invalid chunk size'],
    ['more than 12 hex digits', '0000000000005\r\nhello\r\n0\r\n\r\n', 'too large'],
    ['a huge size', 'fffffffffffff\r\n', 'too large'],
    ['text after the size and a space', '5 a\r\nhello\r\n0\r\n\r\n', 'invalid chunk size'],
    ['data longer than the size', '5\r\nhello!\r\n0\r\n\r\n', 'expected CRLF after chunk data'],
    ['data without CRLF', '5\r\nhello0\r\n\r\n', 'expected CRLF after chunk data'],
    ['CR without LF after data', '5\r\nhello\rX0\r\n\r\n', 'expected CRLF after chunk data'],
    ['a bare LF after the size', '5\nhello\r\n0\r\n\r\n', 'invalid chunk size'],
    ['a bare LF after an extension', '5;a\nhello\r\n0\r\n\r\n', 'invalid chunk extension'],
    ['CR then not LF after the size', '5\rhello\r\n0\r\n\r\n', 'expected LF after chunk size'],
    ['a bare LF after data', '5\r\nhello\n0\r\n\r\n', 'expected CRLF after chunk data'],
    ['a bare LF ending the body', '0\r\n\n', 'invalid trailer'],
    ['a bare LF ending a trailer', '0\r\nX: y\n\r\n', 'invalid trailer'],
    ['a folded trailer', '0\r\nX: y\r\n z\r\n\r\n', 'invalid trailer'],
    ['a trailer without a name', '0\r\n: y\r\n\r\n', 'invalid trailer'],
    ['CR then not LF at the end', '0\r\n\rX', 'expected LF at end'],
  ])('refuses %s', (_name, text, message) => {
    const t = new ChunkedBody(400);
    const data = Buffer.from(text);
    const e = headError(() => t.advance(data, 0, data.length));
    expect(e.status).toBe(400);
    expect(e.message).toContain(message);
    // The same error byte by byte.
    const u = new ChunkedBody(502);
    const e2 = headError(() => {
      for (let i = 0; i < data.length; i++) u.advance(data, i, i + 1);
    });
    expect(e2.status).toBe(502);
    expect(e2.message).toBe(e.message);
  });
});

describe('LengthBody and UntilCloseBody', () => {
  it('LengthBody takes exactly its length across pieces', () => {
    const t = new LengthBody(10);
    expect(t.done).toBe(false);
    const b = Buffer.from('0123456789ABCDEF');
    expect(t.advance(b, 0, 4)).toBe(4);
    expect(t.done).toBe(false);
    expect(t.advance(b, 4, 16)).toBe(6);
    expect(t.done).toBe(true);
    expect(t.advance(b, 10, 16)).toBe(0);
  });

  it('LengthBody(0) is done at once', () => {
    const t = new LengthBody(0);
    expect(t.done).toBe(true);
    expect(t.advance(Buffer.from('abc'), 0, 3)).toBe(0);
  });

  it('UntilCloseBody takes everything', () => {
    const t = new UntilCloseBody();
    expect(t.advance(Buffer.alloc(100), 10, 60)).toBe(50);
    expect(t.done).toBe(false);
  });
});
